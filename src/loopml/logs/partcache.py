"""Rows of the logs' Parquet parts kept in memory between reads, bounded by bytes (LRU).

A compacted part is immutable: it is named after its segment and replica and written whole
(:mod:`loopml.logs.compaction`), so the rows read from it stay right for as long as the part
is the same file. A reader that reads the same period again and again (the controller, every
pass of a rollout, ``loopml.control.rollout``) passes one :class:`PartCache` to
:func:`loopml.logs.logreader.read_log`: only parts new since the last read are read from
storage. A part is known by its path, its size and its stamp from the listing (the ETag on
object stores, else the modification time), so a part written again under the same name (a
compaction rerun after a crash) is read again. The still-open segments are never cached here
(their rows are decoded incrementally by the log reader).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import pyarrow as pa

PART_CACHE_BYTES = 256 * 1024 * 1024

Key = tuple[str, int, str]


def stamp(info: dict[str, Any]) -> str:
    """What changes when a file is written again, from an fsspec listing entry: the ETag
    (s3fs, gcsfs), else the modification time (local, and stores without ETags)."""
    for k in ("ETag", "etag", "mtime", "LastModified", "updated", "created"):
        if info.get(k) is not None:
            return f"{k}={info[k]}"
    return ""


class PartCache:
    """The tables of Parquet parts, by (path, size, stamp), least recently used dropped first
    once they hold more than ``max_bytes``; ``hits`` and ``misses`` count lookups."""

    def __init__(self, max_bytes: int = PART_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.hits = self.misses = 0
        self.nbytes = 0
        self._tables: OrderedDict[Key, pa.Table] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> pa.Table | None:
        with self._lock:
            table = self._tables.get(key)
            if table is None:
                self.misses += 1
                return None
            self.hits += 1
            self._tables.move_to_end(key)
            return table

    def put(self, key: Key, table: pa.Table) -> None:
        """Keep ``table`` for ``key`` (an older version of the same path is dropped)."""
        size = table.nbytes
        with self._lock:
            for old in [k for k in self._tables if k[0] == key[0]]:
                self.nbytes -= self._tables.pop(old).nbytes
            if size > self.max_bytes:
                return
            self._tables[key] = table
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, dropped = self._tables.popitem(last=False)
                self.nbytes -= dropped.nbytes

    def __len__(self) -> int:
        return len(self._tables)
