"""Test helpers: a config, a registered version with a reference profile, and prediction/label
Parquet parts written in the documented layout (what the server's compaction writes)."""

from __future__ import annotations

import itertools
import json
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.artifacts.store import ArtifactStore
from loopml.config import Config
from loopml.stats import DatasetProfile
from loopml.store import Store
from tests._helpers.store import number_signature, version_row

T0 = datetime(2024, 3, 1, tzinfo=UTC).timestamp()  # an hour boundary
_part = itertools.count()


def make_config(tmp_path: Path, store_url: str, **monitor: Any) -> Config:
    return Config.model_validate(
        {
            "project": "p",
            "store": store_url,
            "artifacts": str(tmp_path / "artifacts"),
            "data": {"train": "x.parquet", "target": "y", "sensitive": ["g"]},
            "model": {"name": "m", "train": "t.py:train"},
            "monitor": {"window": "1h", "grace": "0s", **monitor},
        }
    )


def reference_doc(
    train: pd.DataFrame,
    target: str,
    pred: np.ndarray,
    score: np.ndarray,
    calibration: dict[str, Any] | None = None,
) -> bytes:
    """What train/registration.py's reference_bytes stores (plus an optional calibration)."""
    doc: dict[str, Any] = {
        "features": DatasetProfile.from_frame(train).to_dict(),
        "outputs": DatasetProfile.from_frame(
            pd.DataFrame({"_prediction": pred, "_score": score})
        ).to_dict(),
    }
    if calibration:
        doc["calibration"] = calibration
    return zlib.compress(json.dumps(doc).encode())


def register(
    store: Store,
    cfg: Config,
    train: pd.DataFrame,
    pred: np.ndarray,
    score: np.ndarray,
    *,
    metrics: dict[str, float],
    classes: list[Any] = (0, 1),
    target: str = "y",
    calibration: dict[str, Any] | None = None,
    task: str = "classification",
) -> dict[str, Any]:
    digest = ArtifactStore(cfg.artifacts_root).put_bytes(
        reference_doc(train, target, pred, score, calibration), suffix=".profile"
    )
    features = [c for c in train.columns if c != target]
    signature = number_signature(features, task=task, target=target, classes=classes)
    return version_row(
        store, status="champion", reference_profile=digest, signature=signature, metrics=metrics
    )


def write_predictions(
    root: str | Path,
    endpoint: str,
    features: pd.DataFrame,
    *,
    version: int,
    ts: np.ndarray,
    prediction: np.ndarray,
    score: np.ndarray | None = None,
    role: str = "champion",
    latency: np.ndarray | None = None,
    ids: list[str] | None = None,
    event_time: np.ndarray | None = None,
) -> list[str]:
    """Write rows as part files, one per hour partition; returns their request ids.
    ``event_time`` (seconds, NaN for none) adds the ``_event_time`` column."""
    n = len(features)
    ids = ids or [f"r{next(_part)}-{i}" for i in range(n)]
    table = pa.table(
        {
            "_request_id": pa.array(ids, pa.string()),
            "_endpoint": pa.array([endpoint] * n, pa.string()),
            "_version": pa.array(np.full(n, version), pa.int64()),
            "_role": pa.array([role] * n, pa.string()),
            "_ts": pa.array((np.asarray(ts) * 1e6).astype(np.int64)).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "_entity_key": pa.nulls(n, pa.string()),
            "_latency_ms": pa.array(
                latency if latency is not None else np.full(n, 5.0), pa.float64()
            ),
            "_prediction": pa.array(np.asarray(prediction, dtype=np.float64)),
            "_score": pa.array(score if score is not None else np.full(n, np.nan), pa.float64()),
            "_proba": pa.nulls(n, pa.list_(pa.float64())),
            "_flags": pa.nulls(n, pa.string()),
            **{c: pa.array(features[c].to_numpy()) for c in features.columns},
        }
    )
    if event_time is not None:
        et = np.asarray(event_time, dtype=np.float64)
        us = pa.array(np.where(np.isnan(et), 0, et * 1e6).astype(np.int64), mask=np.isnan(et))
        table = table.append_column("_event_time", us.cast(pa.timestamp("us", tz="UTC")))
    _write_by_hour(Path(root) / "predlog", endpoint, table, np.asarray(ts))
    return ids


def write_labels(
    root: str | Path, endpoint: str, ids: list[str], labels: np.ndarray | list[Any], ts: float
) -> None:
    """Label parts; a list is written as Arrow infers its type (text, booleans), an array as
    float64 (what the server logs for numbers)."""
    n = len(ids)
    table = pa.table(
        {
            "_request_id": pa.array(ids, pa.string()),
            "_endpoint": pa.array([endpoint] * n, pa.string()),
            "_label": pa.array(labels)
            if isinstance(labels, list)
            else pa.array(np.asarray(labels, dtype=np.float64)),
            "_ts": pa.array(np.full(n, int(ts * 1e6))).cast(pa.timestamp("us", tz="UTC")),
        }
    )
    _write_by_hour(Path(root) / "labels", endpoint, table, np.full(n, ts))


def _write_by_hour(kind_dir: Path, endpoint: str, table: pa.Table, ts: np.ndarray) -> None:
    hours = np.floor(ts / 3600).astype(np.int64)
    for h in np.unique(hours):
        name = datetime.fromtimestamp(int(h) * 3600, UTC).strftime("%Y%m%d%H")
        folder = kind_dir / f"endpoint={endpoint}" / f"hour={name}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            table.filter(pa.array(hours == h)), folder / f"part-{next(_part):06d}.parquet"
        )


def page(cfg, store, path):
    """The dashboard page, in-process (httpx over ASGITransport, as tests/ui does)."""

    async def get():
        from loopml.ui import create_ui  # the top floor: only the page tests need it

        app = create_ui(cfg, store, auth=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
            return await client.get(path, headers={"accept": "text/html"})

    r = anyio.run(get)
    assert r.status_code == 200, r.text
    return r.text


def uuid7_ids(ts: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Request ids of the server's kind (UUIDv7: the time in their first 48 bits)."""
    out = []
    for t in ts:
        h = f"{int(t * 1000):012x}"
        r = f"{int(rng.integers(0, 2**62)):016x}"
        out.append(f"{h[:8]}-{h[8:12]}-7{r[:3]}-8{r[3:6]}-{r[6:16]}{r[:2]}")
    return out
