"""Labels that arrive before their prediction can be found: kept, and looked up again.

With a remote log root every replica keeps its write-ahead segments on its own disk, so a
label posted to replica B for a prediction replica A answered a moment ago finds no part
holding its request id until A compacts. Refusing it would lose it; such labels are written
durably to ``{spool}/labels/_pending`` instead (answered as ``pending``) and looked up again
at each compaction (:func:`resolve`), after this replica's own segments are uploaded:

- ids found become label parts (``labels/endpoint=<e>/hour=<h>/part-<segment>--<replica>``,
  named after the pending segment, so a rerun after a crash replaces rather than adds);
- ids still unknown whose UUIDv7 time is younger than ``log.label_wait`` are carried into the
  next generation of the segment (``<segment>-g<N+1>.wal``, a deterministic name, written
  whole before the old one is marked done);
- older ones are dropped, with a warning naming how many.

Only UUIDv7 ids younger than ``label_wait`` are held; any other unknown id is reported
``unknown`` at once, as with a local root. A label held for a key scoped to some endpoints
(``a`` in the record) is accepted only for a prediction of one of them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from fsspec.implementations.local import LocalFileSystem
from orjson import loads as _loads

from loopml.logs import segmentfile
from loopml.logs.layout import (
    LABELS,
    SEGMENT_SUFFIX,
    LogLocation,
    hour_of,
    hour_url,
    part_name,
    request_id_millis,
)
from loopml.logs.logreader import lookup_request_ids
from loopml.logs.logtables import dumps, label_table
from loopml.logs.segmentfile import encode_frame, read_segment
from loopml.logs.upload import parquet_bytes, write_whole

log = logging.getLogger("loopml.serve")
PENDING_DIR = "_pending"
_GENERATION = re.compile(r"-g(\d+)$")


def pending_dir(spool: str | Path) -> Path:
    return Path(spool) / LABELS / PENDING_DIR


def holdable(request_ids: Sequence[str], wait: float, now: float | None = None) -> list[str]:
    """The ids a label may wait for: UUIDv7 ids created less than ``wait`` seconds ago."""
    now = time.time() if now is None else now
    out = []
    for rid in request_ids:
        ms = request_id_millis(rid)
        if ms is not None and ms / 1000 + wait > now:
            out.append(rid)
    return out


def pending_record(
    labels: Mapping[str, Any], allowed: Collection[str] | None, ts_us: int | None = None
) -> dict[str, Any]:
    return {
        "r": list(labels),
        "y": list(labels.values()),
        "t": time.time_ns() // 1000 if ts_us is None else ts_us,
        "a": None if allowed is None else sorted(allowed),
    }


def _next_generation(seg: Path) -> Path:
    m = _GENERATION.search(seg.stem)
    base, n = (seg.stem[: m.start()], int(m.group(1))) if m else (seg.stem, 0)
    return seg.with_name(f"{base}-g{n + 1}{SEGMENT_SUFFIX}")


def _resolve_segment(
    fs: Any, where: LogLocation, seg: Path, wait: float, now: float
) -> dict[str, int]:
    records = [_loads(p) for p in read_segment(seg)]
    ids = {rid for rec in records for rid in rec["r"]}
    found = lookup_request_ids(where, ids) if ids else {}
    resolved: dict[tuple[str, str], list[dict[str, Any]]] = {}
    carry: list[dict[str, Any]] = []
    counts = {"resolved": 0, "waiting": 0, "dropped": 0}
    for rec in records:
        allowed = rec.get("a")
        later: dict[str, Any] = {}
        by_endpoint: dict[str, dict[str, Any]] = {}
        for rid, label in zip(rec["r"], rec["y"], strict=True):
            ep = found.get(rid)
            if ep is not None and (allowed is None or ep in allowed):
                by_endpoint.setdefault(ep, {})[rid] = label
            elif ep is None and holdable([rid], wait, now):
                later[rid] = label
            else:
                counts["dropped"] += 1
        for ep, labels in by_endpoint.items():
            resolved.setdefault((ep, hour_of(rec["t"])), []).append(
                {"e": ep, "r": list(labels), "y": list(labels.values()), "t": rec["t"]}
            )
            counts["resolved"] += len(labels)
        if later:
            carry.append({**rec, "r": list(later), "y": list(later.values())})
            counts["waiting"] += len(later)
    for (ep, hour), recs in resolved.items():
        path = f"{hour_url(where.root, LABELS, ep, hour)}/{part_name(seg.stem, where.replica)}"
        write_whole(fs, path, parquet_bytes(label_table(recs)), what="label part")
    if carry:  # written whole before this segment is marked done
        frames = b"".join(encode_frame(dumps(r)) for r in carry)
        write_whole(LocalFileSystem(), str(_next_generation(seg)), frames, what="segment")
    return counts


def resolve(fs: Any, where: LogLocation, wait: float, now: float | None = None) -> dict[str, int]:
    """Look up the held labels again (see the module docstring); returns counts."""
    now = time.time() if now is None else now
    total = {"resolved": 0, "waiting": 0, "dropped": 0}
    if where.spool is None:
        return total
    for seg in sorted(pending_dir(where.spool).glob("*" + SEGMENT_SUFFIX)):

        def work(seg: Path = seg) -> None:
            for key, n in _resolve_segment(fs, where, seg, wait, now).items():
                total[key] += n

        segmentfile.consume(seg, work)
    if total["dropped"]:
        log.warning(
            "dropped %d label(s) whose request id no part of the log held within "
            "log.label_wait (%g s), or whose key may not label its endpoint",
            total["dropped"],
            wait,
        )
    return total
