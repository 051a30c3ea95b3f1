"""The sources of a window's rows: Parquet parts and live segments, with their time ranges.

Window time is the row's event time (``_event_time``, written when the request carried one,
issue 11 item 8) where the column exists and is not null, else its log time ``_ts``. A
``Part`` carries both ranges: window time decides which windows read it, log time which label
parts can label it (request ids and label arrival follow log time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

EVENT_TIME = "_event_time"
PAIRED = "paired"  # the champion's off-path answers on canary rows: never monitored


class LiveLog(Protocol):
    """The segments the server has not compacted yet, as the monitor reads them
    (``loopml.logs.logreader.LiveSegments``, given by ``loopml monitor`` and ``loopml serve``).
    A token is "<segment name>:<bytes read>"."""

    def __call__(self, kind: str, endpoint: str) -> Sequence[tuple[str, pa.Table]]:
        """(token, rows) of each segment; predictions without their features."""

    def window(
        self, kind: str, endpoint: str, token: str, start: float, end: float
    ) -> pa.Table | None:
        """Every column of the token's rows in the window ``[start, end)``; None if the
        segment was compacted since."""


@dataclass
class Part:
    """One source of a log's rows: a Parquet part (``table`` None) or the decoded rows of a
    segment the server has not compacted yet. ``lo``/``hi`` bound its window time, ``ts_lo``/
    ``ts_hi`` its log time (what request ids and label arrival follow)."""

    path: str
    size: int
    lo: float
    hi: float
    ts_lo: float
    ts_hi: float
    event_time: bool = False
    table: pa.Table | None = None


def window_time(schema: pa.Schema) -> ds.Expression:
    """``coalesce(_event_time, _ts)`` where the log has event times, else ``_ts``."""
    if EVENT_TIME in schema.names:
        return pc.coalesce(ds.field(EVENT_TIME), ds.field("_ts"))
    return ds.field("_ts")


def plain(v: object) -> object:
    """Footer statistics as comparable values: timestamps as UNIX seconds (UTC)."""
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp()
    return v


def _seconds(v: object) -> float:
    return float(plain(v))  # type: ignore[arg-type]


def table_part(token: str, table: pa.Table) -> Part:
    """A live segment's rows as a part, with its ranges computed from the rows."""
    ts = pc.min_max(table.column("_ts"))
    ts_lo, ts_hi = _seconds(ts["min"].as_py()), _seconds(ts["max"].as_py())
    lo, hi, has_event = ts_lo, ts_hi, EVENT_TIME in table.schema.names
    if has_event:
        et = pc.min_max(table.column(EVENT_TIME))
        if et["min"].is_valid:
            lo = min(lo, _seconds(et["min"].as_py()))
            hi = max(hi, _seconds(et["max"].as_py()))
    return Part(f"live:{token}", int(table.nbytes), lo, hi, ts_lo, ts_hi, has_event, table)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A live segment's rows in the parts' unified schema (missing columns as nulls; a column
    whose type cannot be cast reads as nulls too, as a part of another type would fail)."""
    arrays = []
    for f in schema:
        if f.name not in table.schema.names:
            arrays.append(pa.nulls(table.num_rows, f.type))
            continue
        col = table.column(f.name)
        try:
            arrays.append(col.cast(f.type) if col.type != f.type else col)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            arrays.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)
