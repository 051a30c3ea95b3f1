"""Reading the prediction log and the label log whole: Parquet parts plus still-open segments.

A read sees every durable record: the frames of the spool's segments not yet marked
``.done``, then the Parquet parts under the root written by :mod:`loopml.logs.compaction`
(listed and read by :class:`~loopml.logs.logfiles.LogFiles`, local or fsspec), except those
of the segments it read (a compaction that crashed half way, or one that ran during the
read), so no row is hidden or doubled. Live segments are decoded incrementally (see
``_decoded``). With a remote root, the segments of other machines' spools are not seen until
they are compacted.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from orjson import loads as _loads

from loopml.logs.layout import (
    HOUR_US,
    LABELS,
    PREDICTIONS,
    REFUSED,
    LogLocation,
    as_location,
    hour_of,
    live_segments,
    request_id_millis,
    segment_of,
    wal_dir,
)
from loopml.logs.logfiles import LogFiles, ts_scalar
from loopml.logs.logtables import (
    BUILDERS,
    RESERVED,
    concat_tables,
    merge_chunks,
    reserved_table,
)
from loopml.logs.partcache import PartCache
from loopml.logs.parts import window_time
from loopml.logs.segmentfile import CHUNK_FRAMES, FRAME_HEADER, frame_batches

Where = LogLocation | str | Path


def _us(t: datetime | None, default: int) -> int:
    if t is None:
        return default
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1_000_000)


def _parquet_files(
    logs: LogFiles, kind: str, endpoint: str | None, hours: set[str] | None, skip: set[str]
) -> list[str]:
    """The parts of ``kind`` (one endpoint or all, some hours or all), except those of the
    segments in ``skip`` (read from the spool instead)."""
    out: list[str] = []
    for ep in [endpoint] if endpoint else logs.endpoints(kind):
        found = logs.hours(kind, ep)
        picked = found if hours is None else [h for h in found if h in hours]
        out.extend(p for p, _ in logs.parts(kind, ep, picked) if segment_of(p) not in skip)
    return sorted(out)


def _hours(start_us: int, end_us: int) -> set[str] | None:
    if end_us - start_us > 24 * 366 * HOUR_US:
        return None
    first = start_us - start_us % HOUR_US
    return {hour_of(t) for t in range(first, end_us, HOUR_US)}


def read_kind(
    kind: str,
    where: Where,
    endpoint: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    cache: PartCache | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """Rows of the log ``kind`` with ``start <= _ts < end`` (UTC), from Parquet and open
    segments; parts ``cache`` holds are not read again (see :mod:`loopml.logs.partcache`).
    ``columns``: only these (those a part has; ``_ts`` always), e.g. no features."""
    where = as_location(where)
    lo, hi = _us(start, 0), _us(end, 2**62)
    want = None if columns is None else list(dict.fromkeys(["_ts", *columns]))
    build = _builder(kind, want)
    live = live_segments(where.spool, kind)
    _forget_segments(where.spool, kind, live)
    tables: list[pa.Table] = []
    read: set[str] = set()
    for seg in live:
        found, part, _ = _segment_table(build, seg)
        if not found:
            continue  # compacted since it was listed: its part files are listed below
        read.add(seg.stem)
        if part is not None and endpoint is not None:
            part = part.filter(pc.equal(part.column("_endpoint"), endpoint))
        if part is not None and want is not None:
            part = part.select([c for c in want if c in part.column_names])
        if part is not None and part.num_rows:
            tables.append(part)
    # Part files are listed only now. Compaction writes a segment's parts before it deletes
    # the segment, so a segment that vanished above is found here; one that was read above
    # is skipped here, even if it was compacted in between.
    hours = _hours(lo, hi) if start and end else None
    logs = LogFiles(where)
    files = _parquet_files(logs, kind, endpoint, hours, read)
    tables = [logs.cached_table(f, cache, want) for f in files] + tables
    if not tables:
        empty = build([])
        return empty if want is None else empty.select([c for c in want if c in empty.column_names])
    table = concat_tables(tables)
    ts = table.column("_ts").cast(pa.int64())
    keep = pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi))
    return table.filter(keep).sort_by("_ts")


def _builder(kind: str, columns: Sequence[str] | None) -> Any:
    """The table builder for a read of ``columns`` (all: None) of the log ``kind``: a read of
    the predictions' reserved columns only (the controller's, the monitor's counts) decodes
    live segments without their features."""
    if kind == PREDICTIONS and columns is not None and set(columns) <= set(RESERVED):
        return reserved_table
    return BUILDERS[kind]


# Live segments decoded so far, by (path, builder): (bytes decoded, their rows). A reader
# (the controller every few seconds during a rollout, the monitor every pass) decodes only
# the frames appended since its last read, never a whole segment again: decoding costs
# ~80 µs a record in Python. What the background process keeps here is the reserved columns
# (``reserved_table``): the monitor reads a closed window's features from a live segment
# only when compaction is late, a chunk at a time and without keeping them
# (:func:`window_rows`).
_decoded: dict[tuple[Path, Any], tuple[int, pa.Table | None]] = {}
_decoded_lock = threading.Lock()


def _segment_table(build: Any, seg: Path) -> tuple[bool, pa.Table | None, int]:
    """(whether the segment still exists, every complete frame of it as a table, the bytes
    those frames span), decoded incrementally (see ``_decoded``), ``CHUNK_FRAMES`` frames at
    a time."""
    key = (seg, build)
    with _decoded_lock:
        start, table = _decoded.get(key, (0, None))
    offset, tables = start, [] if table is None else [table]
    try:
        for payloads, end in frame_batches(seg, CHUNK_FRAMES, start):
            tables.append(build([_loads(p) for p in payloads]))
            offset = end
    except FileNotFoundError:  # compacted meanwhile: the caller reads its part files
        with _decoded_lock:
            _decoded.pop(key, None)
        return False, None, 0
    if len(tables) == (table is not None):
        return True, table, offset
    table = merge_chunks(tables)
    with _decoded_lock:
        _decoded[key] = (offset, table)
    return True, table, offset


def segment_tables(where: Where, kind: str, columns: Sequence[str]) -> list[tuple[str, pa.Table]]:
    """This machine's live segments of ``kind`` (oldest first) as (segment name, its complete
    frames' rows so far, every endpoint's, with ``_endpoint``): what ``loopml.logs.logtail``
    takes new rows from. A segment's table only grows from one call to the next (decoded
    incrementally, see ``_decoded``); a segment compacted meanwhile is left out (its parts
    hold its rows)."""
    spool = as_location(where).spool
    live = live_segments(spool, kind)
    _forget_segments(spool, kind, live)
    build = _builder(kind, [*columns, "_endpoint"])
    out = []
    for seg in live:
        found, table, _ = _segment_table(build, seg)
        if found:
            out.append((seg.stem, table if table is not None else build([])))
    return out


def _forget_segments(spool: str | None, kind: str, live: list[Path]) -> None:
    """Drop what is cached of this log's segments that are no longer live."""
    if spool is None:
        return
    folder, keep = wal_dir(spool, kind), set(live)
    with _decoded_lock:
        for key in [k for k in _decoded if k[0].parent == folder and k[0] not in keep]:
            del _decoded[key]


read_log = partial(read_kind, PREDICTIONS)  # the predictions
read_labels = partial(read_kind, LABELS)  # the labels
read_refused = partial(read_kind, REFUSED)  # the counts of refused rows


def lookup_request_ids(where: Where, request_ids: set[str]) -> dict[str, str]:
    """Find request ids in the log: open segments, then the Parquet hours their ids encode."""
    where = as_location(where)
    found: dict[str, str] = {}
    read: set[str] = set()
    for seg in live_segments(where.spool, PREDICTIONS):
        try:
            for payloads, _ in frame_batches(seg):
                for rec in map(_loads, payloads):
                    for rid in request_ids.intersection(rec["r"]):
                        found[rid] = rec["e"]
        except FileNotFoundError:  # compacted since it was listed: look in its part files
            continue
        read.add(seg.stem)
    rest = request_ids - found.keys()
    hours: set[str] = set()
    for rid in rest:
        ms = request_id_millis(rid)
        if ms is not None:  # the record's hour, or the next if it was logged after a turn
            hours.update({hour_of(ms * 1000), hour_of(ms * 1000 + HOUR_US)})
    if hours:
        logs = LogFiles(where)
        for f in _parquet_files(logs, PREDICTIONS, None, hours, read):  # listed after, as in _read
            t = logs.read_table(f, columns=["_request_id", "_endpoint"])
            hit = t.filter(
                pc.is_in(t.column("_request_id"), value_set=pa.array(sorted(rest), pa.string()))
            )
            found.update(
                zip(
                    hit.column("_request_id").to_pylist(),
                    hit.column("_endpoint").to_pylist(),
                    strict=True,
                )
            )
    return found


def live_tables(where: Where, kind: str, endpoint: str) -> list[tuple[str, pa.Table]]:
    """An endpoint's rows in the segments not compacted yet, one table per segment, each with
    a token ``"<segment>:<bytes decoded>"`` (what the monitor reads beside the Parquet parts:
    ``loopml.logs.parts.LiveLog``). ``kind`` is ``"predlog"``, ``"labels"`` or
    ``"refused"``; predictions come without their features (:func:`window_rows` reads
    them)."""
    where = as_location(where)
    build = reserved_table if kind == PREDICTIONS else BUILDERS[kind]
    live = live_segments(where.spool, kind)
    _forget_segments(where.spool, kind, live)
    out: list[tuple[str, pa.Table]] = []
    for seg in live:
        found, table, offset = _segment_table(build, seg)
        if not found or table is None:
            continue
        out.append((f"{seg.stem}:{offset}", _of_endpoint(table, endpoint)))
    return out


class LiveSegments:
    """This machine's segments not compacted yet, as the monitor reads them
    (``loopml.logs.parts.LiveLog``): :func:`live_tables` and :func:`window_rows`."""

    def __init__(self, where: Where) -> None:
        self.where = as_location(where)

    def __call__(self, kind: str, endpoint: str) -> list[tuple[str, pa.Table]]:
        return live_tables(self.where, kind, endpoint)

    def window(
        self, kind: str, endpoint: str, token: str, start: float, end: float
    ) -> pa.Table | None:
        return window_rows(self.where, kind, endpoint, token, start, end)


def _of_endpoint(table: pa.Table, endpoint: str) -> pa.Table:
    mine = pc.equal(table.column("_endpoint"), endpoint)
    # one endpoint in the segment (the common case): its rows as they are, no copy
    return table if pc.all(mine, skip_nulls=False).as_py() else table.filter(mine)


def window_rows(
    where: Where, kind: str, endpoint: str, token: str, start: float, end: float
) -> pa.Table | None:
    """Every column of an endpoint's rows in a live segment whose window time lies in
    ``[start, end)``, from the frames ``token`` (:func:`live_tables`) covers; None when the
    segment was compacted since (its rows are in part files now). Decoded a chunk at a time
    and kept only for this window, never cached: what the monitor reads of a closed window
    whose rows compaction has not reached yet."""
    where = as_location(where)
    name, _, size = token.rpartition(":")
    seg = next((s for s in live_segments(where.spool, kind) if s.stem == name), None)
    if seg is None:
        return None
    build, stop, tables = BUILDERS[kind], int(size), []
    lo, hi = ts_scalar(start), ts_scalar(end)
    try:
        pos = 0
        for payloads, end_at in frame_batches(seg, CHUNK_FRAMES, 0):
            if end_at > stop:  # frames appended after the token's read: not counted there
                payloads = _within(payloads, pos, stop)
            chunk = _of_endpoint(build([_loads(p) for p in payloads]), endpoint)
            when = window_time(chunk.schema)
            chunk = ds.dataset(chunk).to_table(filter=(when >= lo) & (when < hi))
            if chunk.num_rows:
                tables.append(chunk)
            pos = end_at
            if pos >= stop:
                break
    except FileNotFoundError:
        return None
    return merge_chunks(tables) if tables else build([])


def _within(payloads: list[bytes], pos: int, stop: int) -> list[bytes]:
    """The first payloads of a chunk starting at byte ``pos`` that end by byte ``stop``."""
    out = []
    for p in payloads:
        pos += FRAME_HEADER + len(p)
        if pos > stop:
            break
        out.append(p)
    return out
