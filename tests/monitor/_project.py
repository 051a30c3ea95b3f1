"""A small monitored project: five normal features and a group, a fixed logistic model on x0,
a registered version, and windows of its predictions written to the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml.store import Store

from ._log import T0, make_config, register, uuid7_ids, write_predictions

FEATURES = [f"x{i}" for i in range(5)]


def features(
    rng: np.random.Generator, n: int, shift: float = 0.0, width: int = 5, shifted: int = 3
) -> pd.DataFrame:
    """``width`` standard normal columns x0.. (the first ``shifted`` moved by ``shift``) and a
    group column g, a for 60% of the rows and b for 40%."""
    X = rng.normal(size=(n, width))
    X[:, :shifted] += shift
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(width)])
    frame["g"] = rng.choice(["a", "b"], size=n, p=[0.6, 0.4])
    return frame


def predict(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The model's (predictions, scores): a logistic curve in x0 cut at 0.5."""
    score = 1 / (1 + np.exp(-3 * frame["x0"].to_numpy()))
    return (score > 0.5).astype(int), score


def setup(tmp_path: Path, store_url: str, rng: np.random.Generator, **monitor: Any):
    """(config, store, version): the model registered on 5,000 rows with noisy labels."""
    cfg = make_config(tmp_path, store_url, **monitor)
    store = Store(cfg.store_url)
    train = features(rng, 5000)
    y = (train["x0"] + rng.normal(scale=0.5, size=len(train)) > 0).astype(int)
    pred, score = predict(train)
    v = register(
        store, cfg, train.assign(y=y), pred, score, metrics={"accuracy": float((pred == y).mean())}
    )
    return cfg, store, v


def log_hour(
    cfg,
    version: int,
    rng: np.random.Generator,
    n: int,
    hour: int = 0,
    shift: float = 0.0,
    *,
    uuid7: bool = False,
    **kw,
) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """``n`` fresh rows predicted by the model and logged for endpoint ep at random times in the
    ``hour``-th hour after T0; (rows, predictions, request ids). ``uuid7``: request ids of the
    server's kind, for the rows' times. ``kw`` go to write_predictions."""
    frame = features(rng, n, shift)
    pred, score = predict(frame)
    ts = T0 + hour * 3600 + rng.uniform(0, 3600, n)
    kw = {"prediction": pred, "score": score, **kw}
    if uuid7:
        kw["ids"] = uuid7_ids(ts, rng)
    ids = write_predictions(cfg.artifacts_root, "ep", frame, version=version, ts=ts, **kw)
    return frame, pred, ids
