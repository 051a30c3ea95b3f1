"""Compaction: closed segments of the spool become Parquet parts under the log root
(the layout is in :mod:`loopml.logs.layout`).

Compaction never loses or duplicates a record. A part is named after its segment and the
replica (a rerun writes the same name again, replacing it), and each part appears whole or
not at all (:func:`loopml.logs.upload.write_whole`: a dot-file fsynced and renamed on a local
root; one upload on ``s3://``, which S3 makes visible only once it succeeded).

Only after every part of a segment is written is a ``.done`` marker fsynced beside the
segment, then the segment is deleted. A failed upload (network, credentials) raises
:class:`~loopml.errors.StorageError` naming the part; the segment stays in the spool and the
next compaction retries it. A crash between the upload and the deletion leaves a segment
without marker: the next compaction uploads its parts again under the same names. Until a
segment is deleted, readers (:mod:`loopml.logs.logreader`) take its rows from the segment
and ignore its parts, so a crash at any step neither hides nor doubles a row.

Labels whose request id no part held yet (:mod:`loopml.logs.pending`) are looked up again
here, after the predictions are compacted.

The server runs :func:`compact_in_worker` in a spawned worker process (``Runtime.compact``)
started by :func:`start_worker`, which imports both by reference from this module.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import fsspec
from orjson import loads as _loads

from loopml.logs import pending, wal
from loopml.logs.layout import (
    KINDS,
    LogLocation,
    as_location,
    check_endpoint,
    hour_of,
    hour_url,
    part_name,
    segments,
)
from loopml.logs.logtables import BUILDERS
from loopml.logs.upload import parquet_bytes, write_whole
from loopml.memory import release_memory


def exit_with_parent(parent: int) -> None:
    """Worker initializer: end the worker once ``parent`` (the server) is gone.

    A pool worker holds both ends of its task pipe, so it never reads EOF when the server is
    killed with SIGKILL, and would live on, idle, for good. Ending mid-compaction is safe:
    a segment is deleted only after its part files and ``.done`` marker are written.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def start_worker(parent: int, nice: int = 0) -> None:
    """Compaction worker initializer: lower the worker's CPU priority by ``nice`` (the
    server's requests come first) and end it with ``parent`` (:func:`exit_with_parent`)."""
    if nice:
        os.nice(nice)
    exit_with_parent(parent)


def compact_in_worker(where: LogLocation | str | Path, label_wait: float) -> dict[str, int]:
    """:func:`compact`, then give the memory its Arrow tables took back to the system (the
    worker lives as long as the server)."""
    try:
        return compact(where, label_wait)
    finally:
        release_memory()


def _compact_segment(where: LogLocation | str | Path, kind: str, seg: Path, fs: Any = None) -> int:
    """Write a segment's parts (one per endpoint and hour); returns its rows."""
    where = as_location(where)
    fs = fs if fs is not None else fsspec.core.url_to_fs(where.root)[0]
    records = [_loads(p) for p in wal.read_segment(seg)]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault((rec["e"], hour_of(rec["t"])), []).append(rec)
    build = BUILDERS[kind]
    rows = 0
    for (endpoint, hour), recs in groups.items():
        check_endpoint(endpoint)
        table = build(recs)
        rows += table.num_rows
        path = f"{hour_url(where.root, kind, endpoint, hour)}/{part_name(seg.stem, where.replica)}"
        write_whole(fs, path, parquet_bytes(table))
    return rows


def compact(where: LogLocation | str | Path, label_wait: float = 3600.0) -> dict[str, int]:
    """Move every closed segment of the spool into Parquet under the root, then look up the
    held labels again (``label_wait``: how long they may wait); returns counts. Segments held
    by a live writer (or by another compactor) are skipped.
    """
    where = as_location(where)
    done = {"segments": 0, "rows": 0}
    if where.spool is None:
        return done
    fs, _ = fsspec.core.url_to_fs(where.root)
    for kind in KINDS:
        for seg in segments(where.spool, kind):

            def work(kind: str = kind, seg: Path = seg) -> None:
                done["rows"] += _compact_segment(where, kind, seg, fs)

            done["segments"] += wal.consume(seg, work)
    held = pending.resolve(fs, where, label_wait)
    done.update({f"labels_{k}": n for k, n in held.items() if n})
    return done
