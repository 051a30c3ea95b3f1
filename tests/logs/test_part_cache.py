"""The log reader with a ``PartCache`` (what the controller passes on every rollout pass):
the same rows as a fresh full read while parts arrive, no part read twice, a part written
again under the same name read again. Logs are written by ``PredictionLog`` and compacted."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.memory import MemoryFileSystem

from loopml.logs.compaction import compact
from loopml.logs.layout import LogLocation
from loopml.logs.logreader import read_labels, read_log
from loopml.logs.partcache import PartCache
from loopml.logs.predlog import PredictionLog
from loopml.logs.upload import parquet_bytes, write_whole
from loopml.serve.wire.ids import new_request_ids

START = datetime.now(UTC) - timedelta(hours=1)
END = datetime.now(UTC) + timedelta(hours=1)


class CountingMemoryFS(MemoryFileSystem):
    """An in-memory fsspec filesystem that counts the Parquet parts opened for reading."""

    protocol = "countmem"
    opened: Counter[str] = Counter()

    def _open(self, path, mode="rb", **kw):  # type: ignore[no-untyped-def]
        if "r" in mode and path.endswith(".parquet"):
            CountingMemoryFS.opened[path] += 1
        return super()._open(path, mode=mode, **kw)


def _log(where: LogLocation, n: int, *, labels: bool = True, compacted: bool = True) -> None:
    """``n`` predictions (and their labels) in a segment of their own, compacted unless not."""
    ids = new_request_ids(n)
    with PredictionLog(where) as log:
        log.log_predictions_sync(
            endpoint="credit",
            version=1,
            role="champion",
            request_ids=ids,
            features={"x": np.arange(n, dtype=float)},
            predictions=np.arange(n) % 2,
            probabilities=np.full((n, 2), 0.5),
        )
        if labels:
            asyncio.run(log.log_labels({r: i % 2 for i, r in enumerate(ids)}))
    if compacted:
        compact(where)


def _same_as_fresh(where: LogLocation, cache: PartCache) -> int:
    cached = read_log(where, "credit", START, END, cache=cache)
    assert cached.equals(read_log(where, "credit", START, END))
    got = read_labels(where, "credit", START, END, cache=cache)
    assert got.equals(read_labels(where, "credit", START, END))
    return cached.num_rows


def test_cached_reads_equal_fresh_reads_as_parts_arrive(tmp_path) -> None:
    where = LogLocation(str(tmp_path / "root"), str(tmp_path / "spool"), "host-a")
    cache = PartCache()
    total = 0
    for n in (30, 7, 50, 1):
        _log(where, n)
        total += n
        assert _same_as_fresh(where, cache) == total
    _log(where, 11, compacted=False)  # a segment not compacted yet joins from the spool
    assert _same_as_fresh(where, cache) == total + 11
    compact(where)  # ... and, once compacted, from its part, read once
    assert _same_as_fresh(where, cache) == total + 11
    # one miss per part of each log on its first read (4 + 1 parts, predictions and labels)
    assert cache.misses == 10 and len(cache) == 10


def test_a_second_pass_reads_no_part_again(tmp_path) -> None:
    """Guards against every controller pass reading the whole rollout's parts again."""
    fsspec.register_implementation("countmem", CountingMemoryFS, clobber=True)
    root = f"countmem://{tmp_path.name}/logs"
    where = LogLocation(root, str(tmp_path / "spool"), "host-a")
    for n in (20, 20, 20):
        _log(where, n, labels=False)
    cache = PartCache()
    CountingMemoryFS.opened.clear()
    first = read_log(where, "credit", START, END, cache=cache)
    assert len(CountingMemoryFS.opened) == 3 and first.num_rows == 60
    CountingMemoryFS.opened.clear()
    again = read_log(where, "credit", START, END, cache=cache)
    assert not CountingMemoryFS.opened and again.equals(first)
    _log(where, 5, labels=False)
    CountingMemoryFS.opened.clear()
    assert read_log(where, "credit", START, END, cache=cache).num_rows == 65
    assert len(CountingMemoryFS.opened) == 1  # the new part only
    assert (cache.hits, cache.misses) == (3 + 3, 3 + 1)
    CountingMemoryFS().rm(root, recursive=True)


def test_a_part_written_again_under_its_name_is_read_again(tmp_path) -> None:
    """Guards against serving a part's old rows after it was uploaded again (same name)."""
    where = LogLocation(str(tmp_path / "root"), str(tmp_path / "spool"), "host-a")
    _log(where, 40, labels=False)
    _log(where, 40, labels=False)
    cache = PartCache()
    assert read_log(where, "credit", START, END, cache=cache).num_rows == 80
    part = sorted((tmp_path / "root" / "predlog").rglob("part-*.parquet"))[0]
    fewer = pq.read_table(part).slice(0, 25)
    write_whole(fsspec.filesystem("file"), str(part), parquet_bytes(fewer))
    cached = read_log(where, "credit", START, END, cache=cache)
    assert cached.num_rows == 65 and cached.equals(read_log(where, "credit", START, END))
    assert (cache.hits, cache.misses, len(cache)) == (1, 3, 2)  # the old version is dropped


def test_the_cache_holds_at_most_its_bytes_dropping_the_least_recently_used() -> None:
    tables = [pa.table({"x": np.arange(1000, dtype=np.int64) + i}) for i in range(4)]
    cache = PartCache(max_bytes=int(2.5 * tables[0].nbytes))
    for i, t in enumerate(tables[:2]):
        cache.put((f"p{i}", 1, "m"), t)
    assert cache.get(("p0", 1, "m")) is tables[0]  # p0 used last: p1 goes first
    cache.put(("p2", 1, "m"), tables[2])
    assert cache.get(("p1", 1, "m")) is None and cache.get(("p0", 1, "m")) is tables[0]
    assert cache.nbytes == 2 * tables[0].nbytes <= cache.max_bytes
    cache.put(("big", 1, "m"), pa.concat_tables(tables))  # larger than the bound: not kept
    assert cache.get(("big", 1, "m")) is None and len(cache) == 2


def test_a_read_of_some_columns_equals_those_columns_of_a_full_read(tmp_path) -> None:
    """Guards against the controller holding every feature of a rollout's rows: it reads the
    reserved columns only, from parts and from the spool alike, and caches only those."""
    where = LogLocation(str(tmp_path / "root"), str(tmp_path / "spool"), "host-a")
    for n in (30, 12):
        _log(where, n)
    _log(where, 9, compacted=False)
    want = ("_request_id", "_prediction", "_no_such_column")
    cache = PartCache()
    got = read_log(where, "credit", START, END, cache=cache, columns=want)
    full = read_log(where, "credit", START, END)
    assert got.column_names == ["_ts", "_request_id", "_prediction"]  # "x" is never read
    assert got.equals(full.select(got.column_names))
    assert cache.nbytes < sum(t.nbytes for t in [full]) / 2
    again = read_log(where, "credit", START, END, cache=cache, columns=want)
    assert again.equals(got) and cache.hits == 2
    # a read of every column is cached apart: it is not given the narrow tables
    assert read_log(where, "credit", START, END, cache=cache).equals(full)
    assert read_log(where, "credit", START, END, columns=want).equals(got)  # without a cache
    labels = read_labels(where, "credit", START, END, columns=("_request_id", "_label"))
    assert labels.column_names == ["_ts", "_request_id", "_label"] and labels.num_rows == 51
