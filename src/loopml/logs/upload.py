"""Writing a file whole or not at all, on a local disk or an object store.

On a local disk the bytes go to a dot-file, are fsynced and renamed (readers skip names
starting with ``.``); on an object store (``s3://``) they go in one write (``pipe_file``: one
PUT, or a multipart upload for files over s3fs's 50 MB chunk), and S3 makes an object visible
only once its PUT (or the multipart completion) succeeded. Either way a reader sees the whole
file or none, and a failed write leaves nothing behind and raises
:class:`~loopml.errors.StorageError`.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from loopml.errors import StorageError
from loopml.logs import segmentfile


def is_local(fs: Any) -> bool:
    """Whether an fsspec filesystem is the local disk."""
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


def write_whole(
    fs: Any, path: str, data: bytes, *, what: str = "log part", field: str = "log"
) -> None:
    """Write ``data`` to ``path`` whole or not at all (see the module docstring)."""
    if is_local(fs):
        folder, name = os.path.split(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        segmentfile.fsync_dir(Path(folder))
        return
    try:
        fs.pipe_file(path, data)
    except Exception as exc:  # fsspec backends raise their own network errors
        raise StorageError(
            f"Could not write the {what} {path!r} ({type(exc).__name__}: {str(exc)[:200]}); "
            "nothing was written there and nothing is lost. Check the connection and "
            "credentials: compaction tries again by itself (the segment stays on local disk "
            "until then); batch scoring resumes where it stopped when rerun.",
            field=field,
        ) from exc


ROW_GROUP_ROWS = 65_536  # row groups bound the memory of the monitor's scans


def parquet_bytes(table: pa.Table, **options: Any) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=ROW_GROUP_ROWS, **options)
    return buf.getvalue()
