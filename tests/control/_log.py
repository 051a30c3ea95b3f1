"""Test helpers: a fake clock, registered versions, and prediction/label Parquet parts written
in the documented layout ({root}/predlog|labels/endpoint=<e>/hour=<YYYYMMDDHH>/part-*.parquet)
with chosen accuracy, latency and error characteristics per role."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from loopml.config import Config
from loopml.store import Store
from tests._helpers.store import number_signature, version_row
from tests.monitor._log import _write_by_hour as _write
from tests.monitor._log import write_labels

_part = itertools.count()
HOUR = 3600.0


class Clock:
    """A settable clock, starting on an hour boundary near now (so that store times agree)."""

    def __init__(self, t: float | None = None) -> None:
        self.t = float(t if t is not None else (time.time() // HOUR) * HOUR)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


def make_config(
    tmp_path: Path,
    store_url: str,
    *,
    rollout: dict[str, Any] | None = None,
    retrain: dict[str, Any] | None = None,
    deploy: dict[str, Any] | None = None,
) -> Config:
    ro = {
        "shadow": "10m",
        "shadow_min_samples": 100,
        "steps": [10, 50, 100],
        "step_duration": "10m",
        "guards": {
            "min_samples": 100,
            "consecutive": 2,
            "max_error_rate": 0.05,
            "max_p99_ms": 200,
            "max_prediction_drift": 0.5,
            "max_accuracy_drop": 0.1,
        },
    }
    ro.update(rollout or {})
    return Config.model_validate(
        {
            "project": "p",
            "store": store_url,
            "artifacts": str(tmp_path / "artifacts"),
            "data": {"train": "x.parquet", "target": "y"},
            "model": {"name": "m", "train": "t.py:train"},
            "deploy": {"endpoint": "ep", "rollout": ro, **(deploy or {})},
            "retrain": {"on": ["manual"], **(retrain or {})},
        }
    )


def register(
    store: Store,
    *,
    model: str = "m",
    status: str = "candidate",
    metrics: dict[str, float] | None = None,
    **values: Any,
) -> dict[str, Any]:
    """A version row with a plausible signature (no model file: the controller never loads one)."""
    return version_row(
        store,
        model=model,
        status=status,
        signature=number_signature(["x0"]),
        metrics=metrics,
        **values,
    )


def write_rows(
    root: str | Path,
    endpoint: str,
    *,
    version: int,
    role: str,
    start: float,
    n: int,
    span: float = 60.0,
    accuracy: float = 0.9,
    latency_ms: float = 5.0,
    error_rate: float = 0.0,
    seed: int = 0,
    ids: list[str] | None = None,
    y: np.ndarray | None = None,
    labels: bool = True,
    features: pd.DataFrame | None = None,
) -> tuple[list[str], np.ndarray]:
    """``n`` predictions spread over ``[start, start + span)``; exactly round(accuracy * n) of
    them right, latency ``latency_ms`` (+-10%), round(error_rate * n) flagged as errors; with
    ``labels`` their labels too (arriving at the end of the span). Returns (ids, labels)."""
    rng = np.random.default_rng(seed)
    ids = ids or [f"r{next(_part)}-{i}" for i in range(n)]
    y = rng.integers(0, 2, n) if y is None else np.asarray(y)
    right = np.zeros(n, bool)
    right[rng.permutation(n)[: round(accuracy * n)]] = True
    pred = np.where(right, y, 1 - y)
    score = np.clip(np.where(pred == 1, 0.75, 0.25) + rng.normal(0, 0.1, n), 0, 1)
    flags = np.full(n, None, dtype=object)
    flags[rng.permutation(n)[: round(error_rate * n)]] = "error:model"
    ts = start + np.sort(rng.random(n)) * span
    cols: dict[str, Any] = {
        "_request_id": pa.array(ids, pa.string()),
        "_endpoint": pa.array([endpoint] * n, pa.string()),
        "_version": pa.array(np.full(n, version), pa.int64()),
        "_role": pa.array([role] * n, pa.string()),
        "_ts": pa.array((ts * 1e6).astype(np.int64)).cast(pa.timestamp("us", tz="UTC")),
        "_entity_key": pa.nulls(n, pa.string()),
        "_latency_ms": pa.array(latency_ms * rng.uniform(0.9, 1.1, n), pa.float64()),
        "_prediction": pa.array(pred.astype(np.float64)),
        "_score": pa.array(score, pa.float64()),
        "_proba": pa.nulls(n, pa.list_(pa.float64())),
        "_flags": pa.array(list(flags), pa.string()),
    }
    feats = features if features is not None else pd.DataFrame({"x0": rng.normal(size=n)})
    for c in feats.columns:
        cols[c] = pa.array(feats[c].to_numpy())
    _write(Path(root) / "predlog", endpoint, pa.table(cols), ts)
    if labels and role != "shadow":
        write_labels(root, endpoint, ids, y, start + span)
    return ids, y


def write_mirrored(
    root: str | Path,
    endpoint: str,
    *,
    start: float,
    n: int,
    first: dict[str, Any],
    second: dict[str, Any],
    **kw: Any,
) -> list[str]:
    """Rows of one version and a second version's answers to the same requests (the same ids and
    labels): ``first`` and ``second`` are each one's write_rows keywords (version, role, seed,
    accuracy, ...), ``kw`` are both's. Returns the request ids."""
    ids, y = write_rows(root, endpoint, start=start, n=n, **first, **kw)
    write_rows(root, endpoint, start=start, n=n, ids=ids, y=y, **second, **kw)
    return ids


def write_pairs(
    root: str | Path,
    endpoint: str,
    *,
    champion: int,
    shadow: int,
    start: float,
    n: int,
    accuracy: float = 0.9,
    shadow_accuracy: float = 0.9,
    seed: int = 0,
    **kw: Any,
) -> list[str]:
    """Mirrored requests: the champion's rows and the shadow's rows with the same request ids."""
    return write_mirrored(
        root,
        endpoint,
        start=start,
        n=n,
        first={"version": champion, "role": "champion", "accuracy": accuracy, "seed": seed},
        second={"version": shadow, "role": "shadow", "accuracy": shadow_accuracy, "seed": seed + 1},
        **kw,
    )


def canary_period(
    cfg,
    clock,
    champ: int,
    cand: int,
    *,
    n: int = 120,
    accuracy: float = 0.9,
    latency_ms: float = 5.0,
    seed: int = 0,
) -> None:
    """Canary rows, the champion's paired answers on the same rows, and the champion's own."""
    t = clock()
    canary = {
        "version": cand,
        "role": "canary",
        "seed": seed,
        "accuracy": accuracy,
        "latency_ms": latency_ms,
    }
    paired = {"version": champ, "role": "paired", "seed": seed + 3, "labels": False}
    write_mirrored(cfg.artifacts_root, "ep", start=t, n=n, first=canary, second=paired)
    write_rows(
        cfg.artifacts_root, "ep", version=champ, role="champion", start=t, n=600, seed=seed + 7
    )
