"""Compaction: closed prediction-log and label-log segments become Parquet for the monitor::

    {root}/predlog/endpoint=<e>/hour=<YYYYMMDDHH>/part-<segment>.parquet
    {root}/labels/endpoint=<e>/hour=<YYYYMMDDHH>/part-<segment>.parquet
    {root}/refused/endpoint=<e>/hour=<YYYYMMDDHH>/part-<segment>.parquet  (refusal counts)

Compaction never loses or duplicates a record: part files are named after their segment (a
rerun overwrites them), each is written to a dot-file, fsynced and renamed; a ``.done``
marker is fsynced before the segment is deleted. Until then readers
(:mod:`loopml.serve.logreader`) take the segment's rows from the segment and ignore its part
files, so a crash at any step neither hides nor doubles a row. Write-ahead segments live in
``_wal`` folders, which Arrow's dataset discovery skips (it ignores names starting with
``_`` and ``.``).

The server runs :func:`compact` in a spawned worker process (``Runtime.compact``), which
imports it (and :func:`exit_with_parent`) by reference from this module.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from orjson import loads as _loads

from loopml.errors import UsageError
from loopml.serve import wal
from loopml.serve.logtables import BUILDERS
from loopml.store.endpoints import ENDPOINT_NAME

_ENDPOINT = ENDPOINT_NAME  # one rule: names are checked with it at deploy (store.endpoints)


def check_endpoint(endpoint: str) -> None:
    """Refuse endpoint names that cannot be a partition folder (``endpoint=<e>``)."""
    if not _ENDPOINT.match(endpoint):
        raise UsageError(
            f"Endpoint names must be letters, digits, '.', '_' or '-' (at most 128). Got "
            f"{endpoint[:64]!r}.",
            field="endpoint",
        )


def hour_of(ts_us: int) -> str:
    """The hour partition (``YYYYMMDDHH``, UTC) of a timestamp in microseconds."""
    return datetime.fromtimestamp(ts_us / 1e6, UTC).strftime("%Y%m%d%H")


def exit_with_parent(parent: int) -> None:
    """Worker initializer: end the worker once ``parent`` (the server) is gone.

    A pool worker holds both ends of its task pipe, so it never reads EOF when the server is
    killed with SIGKILL, and would live on, idle, for good. Ending mid-compaction is safe:
    a segment is deleted only after its part files and ``.done`` marker are on disk.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


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
        groups.setdefault((rec["e"], hour_of(rec["t"])), []).append(rec)
    build = BUILDERS[kind_dir.name]
    rows = 0
    for (endpoint, hour), recs in groups.items():
        check_endpoint(endpoint)
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
    for kind in BUILDERS:
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
