"""A small, real loopml world for the dashboard tests: a project trained by the real pipeline
(two versions, the second a child of the first), its endpoint, half a day of prediction-log
Parquet parts in the documented layout (drifting in the last hours) with labels, and the
monitor's windows and alerts computed by the real monitoring pass."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tests.conftest import make_project, synthetic_frame
from tests.monitor._log import _write_by_hour

T0 = datetime(2024, 3, 1, tzinfo=UTC).timestamp()  # an hour boundary
HOURS = 12
DRIFT_FROM = 8  # hours from this one on have four features shifted
ROWS_PER_HOUR = 250
ENDPOINT = "tiny"
SHIFTED = ["x0", "x1", "x2", "x3"]

CONFIG = """\
project: tiny
data: {train: data/train.parquet, target: label, id: id, sensitive: [sex, group]}
model: {name: tiny, train: train.py:train}
gates: {champion: {blocking: false}, fairness: {blocking: false}}
deploy: {endpoint: tiny}
monitor:
  window: 1h
  grace: 0s
  min_window_rows: 100  # 250 rows an hour, half labelled: every window is scored
  alerts:
    - {name: feature-drift, "on": drift, severity: critical}
    - {name: accuracy-drop, "on": performance}
"""


def write_log(root: Path, version: int, seed: int = 1) -> dict[str, Any]:
    """Prediction rows for HOURS hours (and labels for every other row); returns the rows."""
    rng = np.random.default_rng(seed)
    n = HOURS * ROWS_PER_HOUR
    f = synthetic_frame(n, seed=seed)
    ts = T0 + np.sort(rng.uniform(0, HOURS * 3600 - 1, n))
    shifted = ts >= T0 + DRIFT_FROM * 3600
    f.loc[shifted, SHIFTED] += 2.5  # the important features too: the share is importance-weighted
    score = 1 / (1 + np.exp(-(1.5 * f["x0"] - f["x1"])))
    pred = (score > 0.5).astype(np.int64)
    ids = [f"ui-{seed}-{i}" for i in range(n)]
    feats = f.drop(columns=["label", "id"])
    table = pa.table(
        {
            "_request_id": pa.array(ids, pa.string()),
            "_endpoint": pa.array([ENDPOINT] * n, pa.string()),
            "_version": pa.array(np.full(n, version), pa.int64()),
            "_role": pa.array(["champion"] * n, pa.string()),
            "_ts": pa.array((ts * 1e6).astype(np.int64)).cast(pa.timestamp("us", tz="UTC")),
            "_entity_key": pa.nulls(n, pa.string()),
            "_latency_ms": pa.array(rng.gamma(2.0, 3.0, n), pa.float64()),
            "_prediction": pa.array(pred),
            "_score": pa.array(score.to_numpy(), pa.float64()),
            "_proba": pa.nulls(n, pa.list_(pa.float64())),
            "_flags": pa.nulls(n, pa.string()),
            **{c: pa.array(feats[c].to_numpy()) for c in feats.columns},
        }
    )
    _write_by_hour(root / "predlog", ENDPOINT, table, ts)
    labelled = np.arange(n) % 2 == 0
    lab = pa.table(
        {
            "_request_id": pa.array(np.asarray(ids)[labelled].tolist(), pa.string()),
            "_endpoint": pa.array([ENDPOINT] * int(labelled.sum()), pa.string()),
            "_label": pa.array(f["label"].to_numpy()[labelled].astype(np.float64)),
            "_ts": pa.array((ts[labelled] * 1e6).astype(np.int64) + 60_000_000).cast(
                pa.timestamp("us", tz="UTC")
            ),
        }
    )
    _write_by_hour(root / "labels", ENDPOINT, lab, ts[labelled] + 60)
    return {"ids": ids, "score": score.to_numpy(), "labelled": labelled}


def build(root: Path) -> dict[str, Any]:
    """Write, train, deploy, log and monitor; returns the version ids."""
    from loopml.config import load_config
    from loopml.monitor.jobs import run_monitor
    from loopml.store import Store
    from loopml.train import run

    make_project(root, config=CONFIG, frame=synthetic_frame(1500))
    cfg = load_config(root)
    store = Store(cfg.store_url)
    timings: dict[str, float] = {}
    try:
        t = time.perf_counter()
        v1 = run(cfg, store=store).version
        timings["train"] = time.perf_counter() - t
        assert v1 is not None and v1["status"] == "candidate", v1 and v1["status"]
        store.endpoints.deploy(ENDPOINT, v1, actor="test", reason="first champion")
        cfg.model.params = {"C": 0.05}
        v2 = run(cfg, store=store).version
        assert v2 is not None and v2["parent_id"] == v1["id"], v2 and v2["status"]
        timings["train2"] = time.perf_counter() - t
        log = write_log(Path(cfg.artifacts_root), v1["id"])
        t = time.perf_counter()
        summary = run_monitor(cfg, store, now=T0 + (HOURS + 1) * 3600)
        timings["monitor"] = time.perf_counter() - t
        assert summary["windows"] == HOURS, summary
    finally:
        store.close()
    return {"v1": v1["id"], "v2": v2["id"], "log": log, "timings": timings}


def copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def frame_of(n: int = 5, seed: int = 7) -> pd.DataFrame:
    return synthetic_frame(n, seed=seed).drop(columns=["label", "id"])
