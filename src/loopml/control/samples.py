"""What the controller reads from the prediction log: rows of a period, their labels, guard
samples per version and role, and non-overlapping guard batches (the paired comparison of
challenger and champion lives in ``control.judgement``).

The log is read with ``loopml.logs.logreader.read_log`` / ``read_labels`` at the project's
log location (``Context.root``); they also see rows still in this machine's open segments.
Labels are joined by request id, the latest label of a request winning. A caller that reads
again and again (the controller's rollout passes) passes a ``PartCache`` so that only the
parts new since its last read are read.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from loopml.control.guards import Sample
from loopml.logs.layout import LogLocation
from loopml.logs.logreader import read_labels, read_log
from loopml.logs.partcache import PartCache

COLUMNS = (
    "_request_id",
    "_call",
    "_entity_key",
    "_proba",
    "_version",
    "_role",
    "_ts",
    "_latency_ms",
    "_prediction",
    "_score",
    "_flags",
)
LABEL_SLACK = 3600.0  # labels are read up to this far past "now" (clock skew between writers)


def as_datetime(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _seconds(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).cast(pa.int64()).to_numpy(zero_copy_only=False) / 1e6


def read_rows(
    root: LogLocation | str,
    endpoint: str,
    start: float,
    end: float,
    cache: PartCache | None = None,
) -> pd.DataFrame:
    """Prediction rows with ``start <= _ts < end``: the reserved columns (``COLUMNS``; no
    features are read), ``_ts`` in seconds (parts held in ``cache`` are not read again)."""
    return rows_frame(
        read_log(root, endpoint, as_datetime(start), as_datetime(end), cache, COLUMNS)
    )


def rows_frame(t: pa.Table) -> pd.DataFrame:
    """A frame of prediction rows (those of ``COLUMNS`` the table has), ``_ts`` in seconds."""
    df = pd.DataFrame(
        {c: t.column(c).to_pandas() for c in COLUMNS if c in t.column_names and c != "_ts"}
    )
    df["_ts"] = _seconds(t, "_ts") if t.num_rows else np.empty(0)
    return df


def read_label_map(
    root: LogLocation | str,
    endpoint: str,
    start: float,
    now: float,
    cache: PartCache | None = None,
) -> pd.Series:
    """request id -> label, for labels that arrived in ``[start, now]`` (latest wins)."""
    t = read_labels(
        root,
        endpoint,
        as_datetime(start),
        as_datetime(now + LABEL_SLACK),
        cache,
        ("_request_id", "_label"),
    )
    if not t.num_rows:
        return pd.Series(dtype=object)
    s = pd.Series(
        t.column("_label").to_pandas().to_numpy(), index=t.column("_request_id").to_pandas()
    )
    return s[~s.index.duplicated(keep="last")]


def _equal(pred: pd.Series, label: pd.Series) -> np.ndarray:
    """Prediction == label, comparing numbers as numbers and anything else as text."""
    p, y = pd.to_numeric(pred, errors="coerce"), pd.to_numeric(label, errors="coerce")
    if p.notna().all() and y.notna().all():
        return p.to_numpy(dtype=float) == y.to_numpy(dtype=float)
    return pred.astype(str).to_numpy() == label.astype(str).to_numpy()


def output_values(rows: pd.DataFrame) -> np.ndarray:
    """Scores when the model gives them, else predictions (what prediction drift compares)."""
    if "_score" in rows and len(rows) and rows["_score"].notna().mean() > 0.5:
        return rows["_score"].to_numpy(dtype=float)
    return rows["_prediction"].to_numpy() if "_prediction" in rows else np.empty(0)


def sample_of(rows: pd.DataFrame, labels: pd.Series) -> Sample:
    """Summarise one version's rows (and their labels, where they arrived) for the guards."""
    if not len(rows):
        return Sample()
    flags = rows["_flags"] if "_flags" in rows else pd.Series([None] * len(rows))
    errors = int(flags.fillna("").astype(str).str.contains("error", case=False).sum())
    lat = rows["_latency_ms"].to_numpy(dtype=float) if "_latency_ms" in rows else np.empty(0)
    lat = lat[np.isfinite(lat)]
    y = labels.reindex(rows["_request_id"].to_numpy())
    have = y.notna().to_numpy()
    correct = (
        int(
            _equal(
                rows["_prediction"][have].reset_index(drop=True), y[have].reset_index(drop=True)
            ).sum()
        )
        if have.any()
        else 0
    )
    return Sample(
        n=len(rows),
        errors=errors,
        p99_ms=float(np.quantile(lat, 0.99)) if len(lat) else None,
        labelled=int(have.sum()),
        correct=correct,
        values=output_values(rows),
    )


def role_rows(rows: pd.DataFrame, version: int | None, roles: tuple[str, ...]) -> pd.DataFrame:
    if version is None or not len(rows):
        return rows.iloc[:0]
    return rows[(rows["_version"] == version) & rows["_role"].isin(roles)]


def batch_bounds(ts: np.ndarray, start: float, min_rows: int) -> list[tuple[float, float]]:
    """Consecutive, non-overlapping periods from ``start`` holding >= ``min_rows`` rows each
    (the challenger's row times ``ts``); rows after the last full batch wait for the next pass."""
    ts = np.sort(ts[ts >= start])
    out: list[tuple[float, float]] = []
    i, lo = 0, start
    while len(ts) - i >= min_rows:
        hi = float(ts[i + min_rows - 1]) + 1e-6
        out.append((lo, hi))
        i = int(np.searchsorted(ts, hi, side="left"))
        lo = hi
    return out
