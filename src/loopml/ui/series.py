"""Time series for the dashboard's charts, cut down to what a chart can show.

A year of hourly windows is 8,760 points per number; a chart 900 pixels wide shows at most
a few hundred. Windows are grouped into equal buckets of consecutive windows and each bucket
keeps its *worst* value (lowest accuracy and fairness ratio, highest drift, latency and error
count), so downsampling never hides the spike an alert fired on. ``bucket`` in the output
says how many windows each point stands for; with few windows every point is a window.
NumPy ``reduceat`` does the grouping (no Python loop over windows).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MAX_POINTS = 600

# number -> how a bucket of windows is reduced ("min" = worst is lowest)
REDUCE = {
    "accuracy": "min",
    "estimated_accuracy": "min",
    "performance": "min",
    "estimated_performance": "min",
    "fairness_ratio": "min",
    "drift_score": "max",
    "prediction_drift": "max",
    "latency_p50": "max",
    "latency_p99": "max",
    "errors": "sum",
    "rows": "sum",
    "labels": "sum",
    "quality_errors": "sum",
    "n_drifted": "max",
}


def _floats(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _reduce(y: np.ndarray, starts: np.ndarray, how: str) -> np.ndarray:
    if y.size == 0:
        return y
    if how == "sum":
        return np.add.reduceat(np.nan_to_num(y, nan=0.0), starts)
    with np.errstate(invalid="ignore"):
        # fmin/fmax ignore NaN unless a whole bucket is NaN (then the point is a gap)
        return (np.fmin if how == "min" else np.fmax).reduceat(y, starts)


def _jsonable(y: np.ndarray, digits: int = 6) -> list[float | None]:
    out = np.round(y, digits).tolist()
    return [None if (v != v or v in (math.inf, -math.inf)) else v for v in out]


def bucketed(
    x: np.ndarray, columns: dict[str, np.ndarray], *, max_points: int = MAX_POINTS
) -> dict[str, Any]:
    """``x`` (window starts, sorted) and its columns reduced to at most ``max_points`` points."""
    n = len(x)
    k = max(1, math.ceil(n / max_points))
    starts = np.arange(0, n, k)
    out: dict[str, Any] = {"bucket": k, "x": x[starts].tolist() if n else []}
    for name, y in columns.items():
        out[name] = _jsonable(_reduce(y, starts, REDUCE.get(name, "max")))
    return out


def split_by(
    ts: dict[str, Any], key: str, names: tuple[str, ...], *, max_points: int = MAX_POINTS
) -> dict[str, dict[str, Any]]:
    """The columns of ``monitor.queries.timeseries`` split by ``key`` (role or version), each
    part bucketed: ``{"champion": {"x": [...], "bucket": k, "accuracy": [...]}, ...}``."""
    if not ts.get("n"):
        return {}
    x = np.asarray(ts["start"], dtype=float)
    groups = np.asarray([str(v) for v in ts[key]])
    cols = {name: _floats(ts[name]) for name in names}
    out = {}
    for g in sorted(set(groups.tolist())):
        m = groups == g
        out[g] = bucketed(x[m], {name: c[m] for name, c in cols.items()}, max_points=max_points)
    return out
