"""The same monitoring data, part for part, in projects of their own (for engine comparisons)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from loopml.store import Store

from ..monitor._log import T0, make_config, register, write_labels, write_predictions
from ..monitor._project import features


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return features(rng, n, shift, width=4, shifted=2)


def project_with_parts(tmp_path, name: str):
    """The same data, part for part, in a project of its own."""
    rng = np.random.default_rng(5)
    cfg = make_config(tmp_path / name, f"sqlite:///{tmp_path / name / 'db.sqlite'}")
    (tmp_path / name).mkdir(exist_ok=True)
    store = Store(cfg.store_url)
    train = _frame(rng, 3000)
    y = (train["x0"] > 0).astype(int)
    score = 1 / (1 + np.exp(-3 * train["x0"].to_numpy()))
    v = register(
        store, cfg, train.assign(y=y), (score > 0.5).astype(int), score, metrics={"accuracy": 0.9}
    )
    for hour, shift in enumerate([0.0, 1.0]):
        for part in range(3):  # three parts per hour: three blocks per window
            frame = _frame(rng, 1500, shift)
            s = 1 / (1 + np.exp(-3 * frame["x0"].to_numpy()))
            ids = [f"{name[0]}{hour}{part}-{i}" for i in range(len(frame))]
            write_predictions(
                cfg.artifacts_root,
                "ep",
                frame,
                version=v["id"],
                prediction=(s > 0.5).astype(int),
                score=s,
                ts=T0 + hour * 3600 + rng.uniform(0, 3600, len(frame)),
                latency=rng.gamma(2.0, 3.0, len(frame)),
                ids=ids,
            )
            labelled = rng.random(len(frame)) < 0.5
            write_labels(
                cfg.artifacts_root,
                "ep",
                [i for i, k in zip(ids, labelled, strict=True) if k],
                (frame["x0"].to_numpy()[labelled] > 0).astype(float),
                T0 + hour * 3600 + 1800,
            )
    return cfg, store, v
