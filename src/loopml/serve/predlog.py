"""The durable prediction log and the label log.

Every answered prediction (champion, canary or shadow) and every label goes through a
:class:`~loopml.serve.wal.SegmentLog` (checksummed frames, group commit; durable by default:
the caller's ``await`` returns only after its record is fsynced). Frames hold one request
each, as JSON (orjson serialises NumPy arrays in C, ~5 µs a record).

:func:`compact` turns closed segments into Parquet for the monitor::

    {root}/predlog/endpoint=<e>/hour=<YYYYMMDDHH>/part-<segment>.parquet
    {root}/labels/endpoint=<e>/hour=<YYYYMMDDHH>/part-<segment>.parquet

Compaction never loses or duplicates a record: part files are named after their segment (a
rerun overwrites them), each is written to a dot-file, fsynced and renamed; a ``.done``
marker is fsynced before the segment is deleted. Until then readers take the segment's rows
from the segment and ignore its part files, so a crash at any step neither hides nor
doubles a row. Write-ahead segments live in ``_wal`` folders, which Arrow's dataset
discovery skips (it ignores names starting with ``_`` and ``.``).
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loopml.errors import UsageError
from loopml.serve import wal
from loopml.serve.ids import request_id_millis
from loopml.serve.logtables import concat_tables, label_table, prediction_table
from loopml.serve.protocols import dumps

try:
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    from json import loads as _loads  # type: ignore[assignment]

_ENDPOINT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_HOUR_US = 3_600_000_000


def _check_endpoint(endpoint: str) -> None:
    if not _ENDPOINT.match(endpoint):
        raise UsageError(
            f"Endpoint names must be letters, digits, '.', '_' or '-' (at most 128). Got "
            f"{endpoint[:64]!r}.",
            field="endpoint",
        )


def _hour(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / 1e6, UTC).strftime("%Y%m%d%H")


def _us(t: datetime | None, default: int) -> int:
    if t is None:
        return default
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1_000_000)


class PredictionLog:
    """Appends predictions and labels under ``root``; see the module docstring."""

    def __init__(
        self,
        root: str | Path,
        *,
        durable: bool = True,
        segment_bytes: int = 64 << 20,
        segment_seconds: float = 600.0,
        recent_ids: int = 1_000_000,
    ) -> None:
        self.root = Path(root)
        self.recent_ids = recent_ids
        opts: dict[str, Any] = {
            "durable": durable,
            "segment_bytes": segment_bytes,
            "segment_seconds": segment_seconds,
        }
        self.predictions = wal.SegmentLog(self.root / "predlog" / "_wal", **opts)
        self.labels = wal.SegmentLog(self.root / "labels" / "_wal", **opts)
        self._recent: dict[str, str] = {}

    def open(self) -> PredictionLog:
        """Start both logs (segments left by an earlier process wait for compaction)."""
        self.predictions.open()
        self.labels.open()
        return self

    def close(self) -> None:
        self.predictions.close()
        self.labels.close()

    def __enter__(self) -> PredictionLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- predictions ----------------------------------------------------------------------

    def encode_predictions(
        self,
        *,
        endpoint: str,
        version: int,
        role: str,
        request_ids: Sequence[str],
        features: Mapping[str, Any],
        predictions: Any,
        probabilities: Any = None,
        latency_ms: float = 0.0,
        entity_key: str | None = None,
        flags: Any = None,
        ts_us: int | None = None,
    ) -> bytes:
        """One request's record as a frame payload (also remembers its request ids)."""
        _check_endpoint(endpoint)
        if not self._recent or len(self._recent) >= self.recent_ids:
            self._evict()
        self._recent.update(zip(request_ids, repeat(endpoint)))
        return dumps(
            {
                "e": endpoint,
                "v": version,
                "o": role,
                "r": request_ids,
                "t": time.time_ns() // 1000 if ts_us is None else ts_us,
                "k": entity_key,
                "l": latency_ms,
                "f": features,
                "p": predictions,
                "q": probabilities,
                "g": flags,
            }
        )

    async def log_predictions(self, **record: Any) -> None:
        """Append one request's predictions; returns once durable. See :meth:`encode_predictions`."""
        await self.predictions.append_future(self.encode_predictions(**record))

    def log_predictions_sync(self, **record: Any) -> None:
        self.predictions.append_sync(self.encode_predictions(**record))

    def _evict(self) -> None:
        if len(self._recent) >= self.recent_ids:
            drop = max(1, self.recent_ids // 10)
            for key in list(self._recent)[:drop]:
                del self._recent[key]

    # -- labels ---------------------------------------------------------------------------

    def known_request_ids(self, request_ids: Iterable[str]) -> dict[str, str]:
        """Which of ``request_ids`` the log holds, mapped to their endpoint.

        Recent ids come from memory; the rest are looked up in the segments and in the
        Parquet hours around the time encoded in the (UUIDv7) id.
        """
        found: dict[str, str] = {}
        missing: set[str] = set()
        for rid in request_ids:
            ep = self._recent.get(rid)
            if ep is None:
                missing.add(rid)
            else:
                found[rid] = ep
        if missing:
            found.update(lookup_request_ids(self.root, missing))
        return found

    def encode_labels(
        self,
        endpoint: str,
        request_ids: Sequence[str],
        labels: Sequence[Any],
        ts_us: int | None = None,
    ) -> bytes:
        return dumps(
            {
                "e": endpoint,
                "r": request_ids,
                "y": labels,
                "t": time.time_ns() // 1000 if ts_us is None else ts_us,
            }
        )

    async def log_labels(self, labels: Mapping[str, Any], ts_us: int | None = None) -> list[str]:
        """Append ``request_id -> label``; returns the ids the log does not know (not logged)."""
        known = self.known_request_ids(labels)
        by_endpoint: dict[str, list[str]] = {}
        for rid, ep in known.items():
            by_endpoint.setdefault(ep, []).append(rid)
        futures = [
            self.labels.append_future(self.encode_labels(ep, ids, [labels[r] for r in ids], ts_us))
            for ep, ids in by_endpoint.items()
        ]
        if futures:
            await asyncio.gather(*futures)
        return [rid for rid in labels if rid not in known]


# -- reading ----------------------------------------------------------------------------


def _live_segments(kind_dir: Path) -> list[Path]:
    """Segments whose rows are not (all) in Parquet yet."""
    wal_dir = kind_dir / "_wal"
    return [
        p for p in sorted(wal_dir.glob("*" + wal.SUFFIX)) if not p.with_suffix(".done").exists()
    ]


def _parquet_files(
    kind_dir: Path, endpoint: str | None, hours: set[str] | None, skip: set[str]
) -> list[Path]:
    pattern = f"endpoint={endpoint}" if endpoint else "endpoint=*"
    out: list[Path] = []
    for hour_dir in kind_dir.glob(f"{pattern}/hour=*"):
        if hours is not None and hour_dir.name[5:] not in hours:
            continue
        out.extend(p for p in hour_dir.glob("part-*.parquet") if p.stem[5:] not in skip)
    return sorted(out)


def _hours(start_us: int, end_us: int) -> set[str] | None:
    if end_us - start_us > 24 * 366 * _HOUR_US:
        return None
    first = start_us - start_us % _HOUR_US
    return {_hour(t) for t in range(first, end_us, _HOUR_US)}


def _read(
    kind: str, root: Path, endpoint: str | None, start: datetime | None, end: datetime | None
) -> pa.Table:
    kind_dir = Path(root) / kind
    lo, hi = _us(start, 0), _us(end, 2**62)
    live = _live_segments(kind_dir)
    files = _parquet_files(
        kind_dir, endpoint, _hours(lo, hi) if start and end else None, {p.stem for p in live}
    )
    tables = [pq.read_table(f) for f in files]
    build = prediction_table if kind == "predlog" else label_table
    _forget_segments(kind_dir, live)
    for seg in live:
        part = _segment_table(build, seg)
        if part is not None and endpoint is not None:
            part = part.filter(pc.equal(part.column("_endpoint"), endpoint))
        if part is not None and part.num_rows:
            tables.append(part)
    if not tables:
        return build([])
    table = concat_tables(tables)
    ts = table.column("_ts").cast(pa.int64())
    keep = pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi))
    return table.filter(keep).sort_by("_ts")


# Live segments decoded so far, by path: (bytes decoded, their rows). A reader (the
# controller every few seconds during a rollout) decodes only the frames appended since its
# last read, never a whole segment again: decoding costs ~80 µs a record in Python.
_decoded: dict[Path, tuple[int, pa.Table | None]] = {}
_decoded_lock = threading.Lock()


def _segment_table(build: Any, seg: Path) -> pa.Table | None:
    """Every complete frame of a live segment as a table (incrementally, see ``_decoded``)."""
    with _decoded_lock:
        offset, table = _decoded.get(seg, (0, None))
    try:
        with open(seg, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:  # compacted meanwhile
        return table
    frames, end = wal.scan_frames(data)
    if not frames:
        return table
    new = build([_loads(p) for p in frames])
    table = new if table is None else concat_tables([table, new])
    with _decoded_lock:
        _decoded[seg] = (offset + end, table)
    return table


def _forget_segments(kind_dir: Path, live: list[Path]) -> None:
    """Drop what is cached of this log's segments that are no longer live."""
    keep = set(live)
    with _decoded_lock:
        for seg in [p for p in _decoded if p.parent.parent == kind_dir and p not in keep]:
            del _decoded[seg]


def read_log(
    root: str | Path,
    endpoint: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pa.Table:
    """Predictions with ``start <= _ts < end`` (UTC), from Parquet and open segments."""
    return _read("predlog", Path(root), endpoint, start, end)


def read_labels(
    root: str | Path,
    endpoint: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pa.Table:
    """Labels with ``start <= _ts < end`` (UTC), from Parquet and open segments."""
    return _read("labels", Path(root), endpoint, start, end)


def lookup_request_ids(root: str | Path, request_ids: set[str]) -> dict[str, str]:
    """Find request ids on disk: open segments, then the Parquet hours their ids encode."""
    kind_dir = Path(root) / "predlog"
    found: dict[str, str] = {}
    live = _live_segments(kind_dir)
    for seg in live:
        for rec in map(_loads, wal.read_segment(seg)):
            for rid in request_ids.intersection(rec["r"]):
                found[rid] = rec["e"]
    rest = request_ids - found.keys()
    hours: set[str] = set()
    for rid in rest:
        ms = request_id_millis(rid)
        if ms is not None:  # the record's hour, or the next if it was logged after a turn
            hours.update({_hour(ms * 1000), _hour(ms * 1000 + _HOUR_US)})
    if hours:
        for f in _parquet_files(kind_dir, None, hours, {p.stem for p in live}):
            t = pq.read_table(f, columns=["_request_id", "_endpoint"])
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


# -- compaction -------------------------------------------------------------------------


def _write_part(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, row_group_size=65_536)  # bounded memory for the monitor's scans
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    wal.fsync_dir(path.parent)


def _compact_segment(kind_dir: Path, seg: Path) -> int:
    records = [_loads(p) for p in wal.read_segment(seg)]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault((rec["e"], _hour(rec["t"])), []).append(rec)
    build = prediction_table if kind_dir.name == "predlog" else label_table
    rows = 0
    for (endpoint, hour), recs in groups.items():
        _check_endpoint(endpoint)
        part_dir = kind_dir / f"endpoint={endpoint}" / f"hour={hour}"
        part_dir.mkdir(parents=True, exist_ok=True)
        table = build(recs)
        rows += table.num_rows
        _write_part(table, part_dir / f"part-{seg.stem}.parquet")
    return rows


def compact(root: str | Path) -> dict[str, int]:
    """Move every closed segment under ``root`` into Parquet; returns segment/row counts.

    Segments held by a live writer (or by another compactor) are skipped.
    """
    done = {"segments": 0, "rows": 0}
    for kind in ("predlog", "labels"):
        kind_dir = Path(root) / kind
        wal_dir = kind_dir / "_wal"
        for seg in sorted(wal_dir.glob("*" + wal.SUFFIX)):
            fd = wal.claim(seg)
            if fd is None:
                continue
            try:
                marker = seg.with_suffix(".done")
                if not marker.exists():
                    done["rows"] += _compact_segment(kind_dir, seg)
                    marker.touch()
                    wal.fsync_dir(wal_dir)
                seg.unlink()
                wal.fsync_dir(wal_dir)
                marker.unlink()
                done["segments"] += 1
            finally:
                os.close(fd)
    return done
