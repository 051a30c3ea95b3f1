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
from loopml.logs.logfiles import LogFiles
from loopml.logs.logtables import BUILDERS, concat_tables, merge_chunks
from loopml.logs.partcache import PartCache
from loopml.logs.segmentfile import CHUNK_FRAMES, frame_batches

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
    build = BUILDERS[kind]
    want = None if columns is None else list(dict.fromkeys(["_ts", *columns]))
    live = live_segments(where.spool, kind)
    _forget_segments(where.spool, kind, live)
    tables: list[pa.Table] = []
    read: set[str] = set()
    for seg in live:
        found, part = _segment_table(build, seg)
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


# Live segments decoded so far, by path: (bytes decoded, their rows). A reader (the
# controller every few seconds during a rollout) decodes only the frames appended since its
# last read, never a whole segment again: decoding costs ~80 µs a record in Python.
_decoded: dict[Path, tuple[int, pa.Table | None]] = {}
_decoded_lock = threading.Lock()


def _segment_table(build: Any, seg: Path) -> tuple[bool, pa.Table | None]:
    """(whether the segment still exists, every complete frame of it as a table), decoded
    incrementally (see ``_decoded``), ``CHUNK_FRAMES`` frames at a time."""
    with _decoded_lock:
        start, table = _decoded.get(seg, (0, None))
    offset, tables = start, [] if table is None else [table]
    try:
        for payloads, end in frame_batches(seg, CHUNK_FRAMES, start):
            tables.append(build([_loads(p) for p in payloads]))
            offset = end
    except FileNotFoundError:  # compacted meanwhile: the caller reads its part files
        with _decoded_lock:
            _decoded.pop(seg, None)
        return False, None
    if len(tables) == (table is not None):
        return True, table
    table = merge_chunks(tables)
    with _decoded_lock:
        _decoded[seg] = (offset, table)
    return True, table


def _forget_segments(spool: str | None, kind: str, live: list[Path]) -> None:
    """Drop what is cached of this log's segments that are no longer live."""
    if spool is None:
        return
    folder, keep = wal_dir(spool, kind), set(live)
    with _decoded_lock:
        for seg in [p for p in _decoded if p.parent == folder and p not in keep]:
            del _decoded[seg]


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
    ``"refused"``."""
    where = as_location(where)
    build = BUILDERS[kind]
    live = live_segments(where.spool, kind)
    _forget_segments(where.spool, kind, live)
    out: list[tuple[str, pa.Table]] = []
    for seg in live:
        found, table = _segment_table(build, seg)
        if not found or table is None:
            continue
        with _decoded_lock:
            offset = _decoded.get(seg, (0, None))[0]
        mine = pc.equal(table.column("_endpoint"), endpoint)
        # one endpoint in the segment (the common case): its rows as they are, no copy
        if not pc.all(mine, skip_nulls=False).as_py():
            table = table.filter(mine)
        out.append((f"{seg.stem}:{offset}", table))
    return out
