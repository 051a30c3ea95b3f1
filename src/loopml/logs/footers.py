"""What was read from the log's Parquet footers, kept across readers in this process.

A part is immutable once listed under its path, size and stamp (:mod:`loopml.logs.compaction`
writes it whole and names it after its segment; :mod:`loopml.logs.partcache` keys rows the
same way), so what its footer says (time ranges, a column's min and max) stays true. The
monitor's pass every minute in ``loopml serve`` then reads the footers of the parts new
since its last pass only, not of every part since the log began.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from loopml.logs.layout import HOUR, hour_start
from loopml.logs.parts import EVENT_TIME, Part, plain

MAX_ITEMS = 200_000  # a few hundred bytes each: tens of MB at most
_MISSING = object()


class Footers:
    """Footer facts by (what, path, size, stamp, ...), least recently used dropped first
    beyond ``max_items``."""

    def __init__(self, max_items: int = MAX_ITEMS) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple[object, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...], default: Any = None) -> Any:
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: tuple[object, ...], value: Any) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)


FOOTERS = Footers()  # this process's, shared by every LogFiles


def value_range(
    fs: pafs.FileSystem, path: str, size: int, stamp: str | None, column: str
) -> tuple[object, object] | None:
    """(min, max) of ``column`` in a part from its footer statistics, None when unknown (then
    the part is scanned). ``stamp`` None (a part not listed): read, not kept."""
    shared = None if stamp is None else ("range", path, size, stamp, column)
    got: Any = _MISSING if shared is None else FOOTERS.get(shared, _MISSING)
    if got is not _MISSING:
        return got
    try:
        meta = pq.read_metadata(path, filesystem=fs)
    except (OSError, ValueError, pa.ArrowException):
        return None  # unknown, and tried again by the next reader
    idx = meta.schema.to_arrow_schema().get_field_index(column)
    lo = hi = None
    for i in range(meta.num_row_groups if idx >= 0 else 0):
        st = meta.row_group(i).column(idx).statistics
        if st is None or not st.has_min_max:
            lo = hi = None
            break
        lo = st.min if lo is None or st.min < lo else lo
        hi = st.max if hi is None or st.max > hi else hi
    rng = None if lo is None else (plain(lo), plain(hi))
    if shared is not None:
        FOOTERS.put(shared, rng)
    return rng


def _range(meta: pq.FileMetaData, column: str) -> tuple[float, float, int] | None:
    """(min, max, null count) of a column from a part's footer; None when unknown."""
    idx = meta.schema.to_arrow_schema().get_field_index(column)
    if idx < 0:
        return None
    lo = hi = None
    nulls = 0
    for i in range(meta.num_row_groups):
        st = meta.row_group(i).column(idx).statistics
        if st is None or not st.has_null_count:
            return None
        nulls += st.null_count
        if st.has_min_max:
            a, b = plain(st.min), plain(st.max)
            lo = a if lo is None or a < lo else lo  # type: ignore[operator]
            hi = b if hi is None or b > hi else hi  # type: ignore[operator]
        elif st.null_count < meta.row_group(i).num_rows:
            return None
    if lo is None:
        return (math.nan, math.nan, nulls)
    return (float(lo), float(hi), nulls)  # type: ignore[arg-type]


def part(fs: pafs.FileSystem, path: str, size: int, stamp: str | None, hour: str) -> Part:
    """A Parquet part with its ranges of window time and log time, from its footer.

    Without footer statistics the hour partition bounds the log time, and the event time
    is taken to lie in the same range (the part is then scanned for those windows only).
    A footer that could not be read is not kept: the next reader tries again.
    """
    shared = None if stamp is None else ("part", path, size, stamp)
    got = None if shared is None else FOOTERS.get(shared)
    if got is not None:
        return got
    h0 = hour_start(hour)
    ts = et = None
    has_event = read = False
    try:
        meta = pq.read_metadata(path, filesystem=fs)
        ts = _range(meta, "_ts")
        has_event = meta.schema.to_arrow_schema().get_field_index(EVENT_TIME) >= 0
        et = _range(meta, EVENT_TIME) if has_event else None
        read = True
    except (OSError, ValueError, pa.ArrowException):
        pass
    # without statistics the hour bounds it: [h0, h0 + HOUR), not the next hour's first window
    ts_lo, ts_hi = (ts[0], ts[1]) if ts and not math.isnan(ts[0]) else (h0, h0 + HOUR - 1e-6)
    lo, hi = ts_lo, ts_hi
    if has_event and et is not None:
        if math.isnan(et[0]):  # every event time null: log time decides
            pass
        elif et[2] == 0:
            lo, hi = et[0], et[1]
        else:
            lo, hi = min(et[0], ts_lo), max(et[1], ts_hi)
    got = Part(path, size, lo, hi, ts_lo, ts_hi, has_event)
    if read and shared is not None:
        FOOTERS.put(shared, got)
    return got
