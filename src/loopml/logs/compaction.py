"""Compaction: closed segments of the spool become Parquet parts under the log root
(the layout is in :mod:`loopml.logs.layout`).

Compaction never loses or duplicates a record. A part is named after its segment and the
replica (a rerun writes the same name again, replacing it), and each part appears whole or
not at all:

- on a local root it is written to a dot-file, fsynced and renamed;
- on a remote root (``s3://``) it is uploaded in one write (``pipe_file``: one PUT, or a
  multipart upload for parts over s3fs's 50 MB chunk); S3 makes an object visible only once
  its PUT (or the multipart completion) succeeded, so readers never see half a part.

Only after every part of a segment is written is a ``.done`` marker fsynced beside the
segment, then the segment is deleted. A failed upload (network, credentials) raises
:class:`~loopml.errors.StorageError` naming the part; the segment stays in the spool and the
next compaction retries it. A crash between the upload and the deletion leaves a segment
without marker: the next compaction uploads its parts again under the same names. Until a
segment is deleted, readers (:mod:`loopml.logs.logreader`) take its rows from the segment
and ignore its parts, so a crash at any step neither hides nor doubles a row.

Labels whose request id no part held yet (``loopml.logs.pending``) are looked up again here,
after the predictions are compacted.

The server runs :func:`compact` in a spawned worker process (``Runtime.compact``), which
imports it (and :func:`exit_with_parent`) by reference from this module.
"""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from orjson import loads as _loads

from loopml.errors import StorageError
from loopml.logs import wal
from loopml.logs.layout import (
    DONE_SUFFIX,
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


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


def write_whole(fs: Any, path: str, data: bytes, *, what: str = "log part") -> None:
    """Write ``data`` to ``path`` whole or not at all (see the module docstring)."""
    if _is_local(fs):
        folder, name = os.path.split(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        wal.fsync_dir(Path(folder))
        return
    try:
        fs.pipe_file(path, data)
    except Exception as exc:  # fsspec backends raise their own network errors
        raise StorageError(
            f"Could not write the {what} {path!r} ({type(exc).__name__}: {str(exc)[:200]}); "
            "nothing was written there. Check the connection and credentials; what it holds "
            "is kept and written again on the next try.",
            field="log",
        ) from exc


def parquet_bytes(table: pa.Table, **options: Any) -> bytes:
    buf = io.BytesIO()
    # row groups bound the memory of the monitor's scans
    pq.write_table(table, buf, row_group_size=65_536, **options)
    return buf.getvalue()


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


def compact(where: LogLocation | str | Path) -> dict[str, int]:
    """Move every closed segment of the spool into Parquet under the root; returns
    segment/row counts. Segments held by a live writer (or by another compactor) are skipped.
    """
    where = as_location(where)
    done = {"segments": 0, "rows": 0}
    if where.spool is None:
        return done
    fs, _ = fsspec.core.url_to_fs(where.root)
    for kind in KINDS:
        for seg in segments(where.spool, kind):
            fd = wal.claim(seg)
            if fd is None:
                continue
            try:
                marker = seg.with_suffix(DONE_SUFFIX)
                if not marker.exists():
                    done["rows"] += _compact_segment(where, kind, seg, fs)
                    marker.touch()
                    wal.fsync_dir(seg.parent)
                seg.unlink()
                wal.fsync_dir(seg.parent)
                marker.unlink()
                done["segments"] += 1
            finally:
                os.close(fd)
    return done
