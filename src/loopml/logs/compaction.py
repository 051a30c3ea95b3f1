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

A segment holds ``serve.log_segment`` seconds of traffic (a million records and more), so it
is read :data:`~loopml.logs.segmentfile.CHUNK_FRAMES` frames at a time: each chunk is
decoded, grouped by endpoint and hour, built into one Arrow table per group and kept as
compressed Arrow IPC; the Python records of one chunk are all that is ever alive. Once every
chunk is read, each group's tables are brought to one schema
(:func:`~loopml.logs.logtables.unified_schema`: the one a build over every record of the
group would give) and written to one Parquet part, in row groups of
:data:`~loopml.logs.upload.ROW_GROUP_ROWS` rows as a whole table would be, so the parts are
the same whatever the chunk size. A column of numbers in some chunks and text in others (a
rare, mixed feature) is the one case that reads the segment a second time, to build that
group's column as text from its records.

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
import pyarrow as pa
import pyarrow.parquet as pq
from orjson import loads as _loads

from loopml.logs import pending, segmentfile
from loopml.logs.layout import (
    HOUR_US,
    KINDS,
    LogLocation,
    as_location,
    check_endpoint,
    hour_of,
    hour_url,
    part_name,
    segments,
)
from loopml.logs.logtables import BUILDERS, conform, null_columns, unified_schema
from loopml.logs.segmentfile import CHUNK_FRAMES, frame_batches
from loopml.logs.upload import ROW_GROUP_ROWS, write_whole
from loopml.memory import Budget, one_heavy_pass, release_memory, use_jemalloc

Group = tuple[str, str]  # (endpoint, hour)
# one chunk's table of a group: compressed Arrow IPC, its schema, its columns of nulls only
Chunk = tuple[pa.Buffer, pa.Schema, frozenset[str]]
_IPC = pa.ipc.IpcWriteOptions(compression="zstd")


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


def lower_priority(pid: int, target: int) -> None:
    """Raise the nice value of process ``pid`` (0: this one) to ``target``, never lower it.

    The server calls it on a child it just started, so that the child's imports, before
    :func:`loopml.background_worker.run_background` runs, do not compete with the server at its own priority (in the
    issue 14 soak a handover's two fresh processes took ~1 s of CPU each, at nice 0 until
    then); the child calls it again, in case its parent was not allowed to."""
    try:
        if os.getpriority(os.PRIO_PROCESS, pid) < target:
            os.setpriority(os.PRIO_PROCESS, pid, target)
    except OSError:  # gone already, or not ours to change: the child lowers itself
        pass


_BUDGET = Budget(0.0)  # the worker's (start_worker)
# how long a compaction waits for a monitoring pass over the same log to end (one_heavy_pass):
# a pass over a window of 77k rows took 2-3 s in the issue 14 soak
HEAVY_WAIT = 30.0


def start_worker(parent: int, nice: int = 0, max_growth: float = 0.0) -> None:
    """Compaction worker initializer: lower the worker's CPU priority by ``nice`` (the
    server's requests come first), end it with ``parent`` (:func:`exit_with_parent`), and
    ask for a fresh worker when its memory grew ``max_growth`` over its first compaction's
    (:class:`loopml.memory.Budget`)."""
    global _BUDGET
    if nice:
        os.nice(nice)
    use_jemalloc()
    _BUDGET = Budget(max_growth)
    exit_with_parent(parent)


def compact_in_worker(where: LogLocation | str | Path, label_wait: float) -> dict[str, int]:
    """:func:`compact`, then give the memory its Arrow tables took back to the system (the
    worker lives as long as the server); ``"handover": 1`` in the counts when the worker's
    memory grew past its budget (the server then starts a fresh one). Not while a
    monitoring pass runs over the same log (:func:`loopml.memory.one_heavy_pass`; at most
    :data:`HEAVY_WAIT` s of waiting)."""
    with one_heavy_pass(as_location(where).spool, wait=HEAVY_WAIT):
        try:
            done = compact(where, label_wait)
        finally:
            release_memory()  # before the lock goes: the next pass starts from less
    if _BUDGET.spent():
        done["handover"] = 1
    return done


def _chunk_tables(
    kind: str,
    seg: Path,
    chunk_frames: int,
    text: dict[Group, frozenset[str]],
    only: set[Group] | None = None,
) -> dict[Group, list[Chunk]]:
    """A segment's tables, one per chunk of frames and group (only the groups in ``only``,
    if given), with the columns ``text`` names for a group built as text."""
    build = BUILDERS[kind]
    out: dict[Group, list[Chunk]] = {}
    for payloads, _ in frame_batches(seg, chunk_frames):
        by_hour: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for rec in map(_loads, payloads):  # hours as numbers: hour_of once per group
            by_hour.setdefault((rec["e"], rec["t"] // HOUR_US), []).append(rec)
        for (endpoint, hour), recs in by_hour.items():
            key = (endpoint, hour_of(hour * HOUR_US))
            if only is not None and key not in only:
                continue
            table = build(recs, text.get(key, frozenset()))
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema, options=_IPC) as writer:
                writer.write_table(table)
            out.setdefault(key, []).append((sink.getvalue(), table.schema, null_columns(table)))
    return out


def _part_bytes(chunks: list[Chunk], schema: pa.Schema) -> tuple[bytes, int]:
    """One Parquet part (and its rows) from a group's chunk tables, in row groups of
    ``ROW_GROUP_ROWS`` rows, as :func:`~loopml.logs.upload.parquet_bytes` writes a table.
    Empties ``chunks``: each is let go once it is in the writer."""
    sink = pa.BufferOutputStream()
    rows, held = 0, schema.empty_table()
    chunks.reverse()
    with pq.ParquetWriter(sink, schema) as writer:
        while chunks:
            table = conform(pa.ipc.open_stream(chunks.pop()[0]).read_all(), schema)
            rows += table.num_rows
            held = pa.concat_tables([held, table])
            whole = held.num_rows - held.num_rows % ROW_GROUP_ROWS
            if whole:
                writer.write_table(held.slice(0, whole), row_group_size=ROW_GROUP_ROWS)
                held = held.slice(whole)
        if held.num_rows or not rows:
            writer.write_table(held, row_group_size=ROW_GROUP_ROWS)
    return sink.getvalue().to_pybytes(), rows


def _compact_segment(
    where: LogLocation | str | Path,
    kind: str,
    seg: Path,
    fs: Any = None,
    chunk_frames: int = CHUNK_FRAMES,
) -> int:
    """Write a segment's parts (one per endpoint and hour), reading it ``chunk_frames``
    frames at a time (see the module docstring); returns its rows."""
    where = as_location(where)
    fs = fs if fs is not None else fsspec.core.url_to_fs(where.root)[0]
    chunks = _chunk_tables(kind, seg, chunk_frames, {})
    schemas = {key: unified_schema([c[1:] for c in cs]) for key, cs in chunks.items()}
    text = {key: names for key, (_, names) in schemas.items() if names}
    if text:  # numbers in some chunks, text in others: those groups again, built as text
        for key in text:
            del chunks[key]
        chunks.update(_chunk_tables(kind, seg, chunk_frames, text, set(text)))
    rows = 0
    for endpoint, hour in list(chunks):
        check_endpoint(endpoint)
        data, n = _part_bytes(chunks.pop((endpoint, hour)), schemas[endpoint, hour][0])
        rows += n
        path = f"{hour_url(where.root, kind, endpoint, hour)}/{part_name(seg.stem, where.replica)}"
        write_whole(fs, path, data)
    return rows


def compact(
    where: LogLocation | str | Path,
    label_wait: float = 3600.0,
    chunk_frames: int = CHUNK_FRAMES,
) -> dict[str, int]:
    """Move every closed segment of the spool into Parquet under the root, then look up the
    held labels again (``label_wait``: how long they may wait); returns counts. Segments held
    by a live writer (or by another compactor) are skipped; each is read ``chunk_frames``
    frames (records) at a time.
    """
    where = as_location(where)
    done = {"segments": 0, "rows": 0}
    if where.spool is None:
        return done
    fs, _ = fsspec.core.url_to_fs(where.root)
    for kind in KINDS:
        for seg in segments(where.spool, kind):

            def work(kind: str = kind, seg: Path = seg) -> None:
                done["rows"] += _compact_segment(where, kind, seg, fs, chunk_frames)

            done["segments"] += segmentfile.consume(seg, work)
    held = pending.resolve(fs, where, label_wait)
    done.update({f"labels_{k}": n for k, n in held.items() if n})
    return done
