"""A labelled history cut into the requests a backtest replays, on a virtual clock.

Event time comes from the project's ``data.time`` column: datetimes, date strings, UNIX
seconds, or whole years (integers 1000-9999, read as 1 January of that year). Public data is
often coarse (a survey year, a day): rows sharing one time value are spread evenly over the
gap to the next value (the last value gets the median gap), so a year of interviews is served
over that year rather than in one instant.

Requests hold 1-``max_rows`` rows (log-uniform sizes: most requests are small, a few are
batches), cut from consecutive rows of the file (sorted by ``data.id`` when it is declared,
so the rows of one entity travel together, as a household's rows do in the survey files),
and never from rows further apart than ``span`` (a twentieth of a monitor window): a row a
day is a request a day. Within one time value (or one span) the requests are shuffled
before they are spread: the file's order (e.g. by household or region) would otherwise look
like drift that is not there. A request's entity key (``X-Entity-Key``, which makes canary
routing sticky) is its first row's id.

The virtual clock runs ``scale`` times faster than the history: virtual second ``v`` is data
time ``origin + (v - origin) * scale``, so a config whose monitor window is 5 s can stand for
a month of history (``scale`` = 30 days / 5 s), as the demo's config does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from loopml.errors import DataError

YEARS = (1000, 9999)


def event_seconds(column: pd.Series, name: str) -> np.ndarray:
    """The time column as UNIX seconds (float64); a clear error for values that are not times."""
    if column.isna().any():
        first = int(np.flatnonzero(column.isna().to_numpy())[0])
        raise DataError(
            f"The time column {name!r} is empty in {int(column.isna().sum())} rows (first: row "
            f"{first}). A backtest replays rows in time order: fill or drop those rows.",
            field=name,
        )
    if pd.api.types.is_datetime64_any_dtype(column):
        ts = pd.to_datetime(column, utc=True)
        return (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        v = column.to_numpy(dtype=float)
        if np.all(np.mod(v, 1) == 0) and YEARS[0] <= v.min() and v.max() <= YEARS[1]:
            years = np.unique(v.astype(int))
            start = {y: datetime(y, 1, 1, tzinfo=UTC).timestamp() for y in years}
            return np.array([start[int(y)] for y in v], dtype=float)
        return v
    parsed = pd.to_datetime(column.astype(str), utc=True, errors="coerce", format="mixed")
    if parsed.isna().any():
        bad = column[parsed.isna()].iloc[0]
        raise DataError(
            f"The time column {name!r} holds values that are not times, e.g. {bad!r}. Use "
            "ISO dates or times (2017-03-01, 2017-03-01T14:00), UNIX seconds or whole years.",
            field=name,
        )
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)


@dataclass
class Requests:
    """The replay plan: rows in serving order, cut into requests.

    ``order`` holds row positions of the source frame in serving order; request ``i`` holds
    ``order[bounds[i]:bounds[i + 1]]``, arrives at data time ``data_t[i]`` and carries entity
    key ``keys[i]`` (``None`` without ``data.id``).
    """

    order: np.ndarray
    bounds: np.ndarray
    data_t: np.ndarray
    keys: list[str | None]

    def __len__(self) -> int:
        return len(self.data_t)

    def rows(self, i: int) -> np.ndarray:
        return self.order[self.bounds[i] : self.bounds[i + 1]]


def request_sizes(rng: np.random.Generator, n_rows: int, max_rows: int) -> np.ndarray:
    """Log-uniform sizes in [1, max_rows] summing to ``n_rows``."""
    sizes: list[np.ndarray] = []
    total = 0
    while total < n_rows:
        draw = np.exp(rng.uniform(0.0, np.log(max_rows + 1), size=max(16, n_rows // 20)))
        s = np.clip(np.floor(draw).astype(np.int64), 1, max_rows)
        sizes.append(s)
        total += int(s.sum())
    out = np.concatenate(sizes)
    cut = int(np.searchsorted(np.cumsum(out), n_rows))
    out = out[: cut + 1].copy()
    out[-1] -= int(out.sum()) - n_rows
    return out[out > 0]


def plan_requests(
    t: np.ndarray,
    ids: np.ndarray | None,
    *,
    max_rows: int = 200,
    seed: int = 0,
    last_gap: float | None = None,
    span: float | None = None,
) -> Requests:
    """Cut rows with event times ``t`` (seconds) into requests; see the module docstring.

    A request gathers rows of one ``span`` of time at most (fine-grained times: rows far apart
    never share a request); ``None``: no limit."""
    rng = np.random.default_rng(seed)
    if ids is None:
        order = np.argsort(t, kind="stable")  # by time, then file order
    else:  # by time, then id
        order = np.lexsort((pd.factorize(pd.Series(ids), sort=True)[0], t))
    ts = t[order]
    n = len(ts)
    if not n:
        return Requests(order, np.zeros(1, np.int64), np.empty(0), [])
    values = np.unique(ts)
    gaps = np.diff(values)
    tail = float(np.median(gaps)) if len(gaps) else float(last_gap or 0.0)
    # rows of one span gather into requests (without a span: rows of one time value)
    bucket = np.floor((ts - ts[0]) / span).astype(np.int64) if span else np.searchsorted(values, ts)
    edges = np.flatnonzero(np.diff(bucket) != 0) + 1
    starts, ends = np.concatenate([[0], edges]), np.concatenate([edges, [n]])
    pieces: list[tuple[float, np.ndarray]] = []
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        rows, first_t, last_t = order[lo:hi], float(ts[lo]), float(ts[hi - 1])
        following = float(ts[hi]) if hi < n else last_t + tail
        sizes = request_sizes(rng, hi - lo, max_rows)
        cuts = np.concatenate([[0], np.cumsum(sizes)])
        if hi - lo == 1:
            pieces.append((first_t, rows))
            continue
        # rows that share one time (a survey year) are spread over the gap to the next
        # time; rows of several times within one span, over that span
        width = following - first_t
        if last_t > first_t and span:
            width = min(width, float(span))
        for k, j in enumerate(rng.permutation(len(sizes))):
            when = first_t + width * (k + 0.5) / len(sizes)
            pieces.append((when, rows[cuts[j] : cuts[j + 1]]))
    pieces.sort(key=lambda p: p[0])  # stable: ties keep their order
    order_all = np.concatenate([p[1] for p in pieces])
    bounds = np.concatenate([[0], np.cumsum([len(p[1]) for p in pieces])]).astype(np.int64)
    data_t = np.array([p[0] for p in pieces], dtype=float)
    key_list: list[str | None]
    if ids is None:
        key_list = [None] * len(data_t)
    else:
        key_list = [str(ids[order_all[b]]) for b in bounds[:-1]]
    return Requests(order_all, bounds, data_t, key_list)
