"""Compaction reads a segment a chunk of frames at a time: its memory is bounded by the chunk,
not by the segment, and the parts are the ones a build over the whole segment gives (same
rows, columns, types, values and row groups) whatever the chunk size, even where chunks
disagree on a column's type."""

from __future__ import annotations

import shutil
import threading
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.logs import logreader
from loopml.logs.compaction import compact
from loopml.logs.layout import KINDS, hour_of, segments, wal_dir
from loopml.logs.logreader import read_labels, read_log
from loopml.logs.logtables import BUILDERS
from loopml.logs.predlog import PredictionLog
from loopml.logs.segmentfile import encode_frame, read_segment
from loopml.logs.upload import parquet_bytes

T0 = int(datetime(2026, 11, 23, 10, 30, tzinfo=UTC).timestamp() * 1e6)
HOUR = 3_600_000_000


def _predict(
    log: PredictionLog, i: int, features: dict[str, list[Any]], wait: bool = False, **extra: Any
) -> None:
    """Log one request; ``wait``: until it is written (a reader sees it)."""
    n = len(next(iter(features.values())))
    record = {
        "endpoint": "credit",
        "version": 1,
        "role": "champion",
        "request_ids": [f"r{i}-{j}" for j in range(n)],
        "features": features,
        "predictions": [j % 2 for j in range(n)],
        "ts_us": T0 + i,
        **extra,
    }
    if wait:
        log.log_predictions_sync(**record)
    else:
        log.predictions.append_nowait(log.encode_predictions(**record))


def _mixed_segments(root: Path) -> None:
    """Every log kind, several endpoints and hours, and columns whose type changes along the
    segment: null-only at first, appearing late, numbers then text, booleans, no probas."""
    rng = np.random.default_rng(7)
    with PredictionLog(root, durable=False) as log:
        for i in range(90):
            n = 1 + i % 3
            features: dict[str, list[Any]] = {
                "x": rng.normal(size=n).round(3).tolist(),
                "nullfirst": [None] * n if i < 25 else [float(i)] * n,
                "mixed": [i] * n if i < 40 else [f"s{i}"] * n,
                "flag": [bool(i % 2)] * n,
                "allnull": [None] * n,
            }
            if i >= 30:
                features["late"] = [i] * n
            if i == 61:
                features["_score"] = [1.0] * n  # a feature named like a reserved column
            _predict(
                log,
                i,
                features,
                endpoint="fraud" if i % 3 == 0 else "credit",
                role=("champion", "shadow", "canary")[i % 3],
                predictions=["yes"] * n if i >= 70 and i % 2 else [i % 2] * n,
                probabilities=None if i % 4 == 1 else [[0.3, 0.7]] * n,
                entity_key=f"k{i}" if i % 5 == 0 else None,
                flags=["unseen:city"] * n if i % 7 == 0 else None,
                event_times=[T0 - i] * n if i % 6 == 0 else None,
                ts_us=T0 + (i // 30) * HOUR + i,
            )
        for i in range(40):
            label: Any = i % 2 if i < 20 else ("cat" if i % 2 else 1.0)
            log.labels.append_nowait(
                log.encode_labels("credit", [f"r{i}-0"], [label], T0 + (i // 20) * HOUR + i)
            )
        log.log_refused(
            [
                {"t": T0 + i, "e": "credit", "v": 1, "o": "champion", "reason": "nulls"}
                | ({"c": "x", "s": 422, "n": 1, "rows": i} if i % 2 else {})
                for i in range(20)
            ]
        )


def _whole_build(seg: Path, kind: str) -> dict[tuple[str, str], pa.Table]:
    """What compaction wrote before it read in chunks: every record decoded, then one build
    per endpoint and hour."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in map(orjson.loads, read_segment(seg)):
        groups.setdefault((rec["e"], hour_of(rec["t"])), []).append(rec)
    return {key: BUILDERS[kind](recs) for key, recs in groups.items()}


def _parts(root: Path, kind: str) -> dict[str, tuple[pa.Table, list[int]]]:
    """Each part of ``kind`` under ``root``: its table and the rows of its row groups."""
    out = {}
    for path in sorted((root / kind).glob("endpoint=*/hour=*/*.parquet")):
        f = pq.ParquetFile(path)
        groups = [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)]
        out[str(path.relative_to(root))] = (f.read(), groups)
    return out


def test_parts_are_the_same_for_any_chunk_size(tmp_path):
    _mixed_segments(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    whole = {k: _whole_build(s, k) for k in KINDS for s in segments(str(tmp_path / "a"), k)}
    assert compact(tmp_path / "a", chunk_frames=7)["rows"] == compact(tmp_path / "b")["rows"]
    for kind in KINDS:
        small, one = _parts(tmp_path / "a", kind), _parts(tmp_path / "b", kind)
        assert small.keys() == one.keys() and len(small) == len(whole[kind])
        for name, (table, groups) in small.items():
            assert table.equals(one[name][0], check_metadata=True), name
            assert groups == one[name][1], name
            endpoint, hour = (p.split("=")[1] for p in name.split("/")[1:3])
            before = pq.ParquetFile(pa.BufferReader(parquet_bytes(whole[kind][endpoint, hour])))
            assert table.equals(before.read(), check_metadata=True), name
            assert groups == [before.metadata.row_group(i).num_rows for i in range(len(groups))]
    credit = _parts(tmp_path / "a", "predlog")
    table = next(t for name, (t, _) in credit.items() if "credit/hour=2026112311" in name)
    assert table.schema.field("mixed").type == pa.string()  # numbers in chunk 1, text later
    assert table.column("mixed").to_pylist()[:2] == ["31", "31"]  # Python's str, as before


def test_chunks_with_different_schemas_make_one_part(tmp_path):
    """A column of nulls only in the first chunk, one appearing in a later chunk, numbers in
    one chunk and text in another: one part with the types a whole build gives, every row."""
    rows = [
        {"a": [None], "b": [1], "p": 0},
        {"a": [None], "b": [2], "p": 1},
        {"a": [1.5], "b": ["x"], "c": [True], "p": "yes"},
        {"a": [None], "b": ["y"], "c": [False], "p": "no"},
        {"a": [2], "b": [3.0], "d": [None], "p": 1},
    ]
    with PredictionLog(tmp_path, durable=False) as log:
        for i, row in enumerate(rows):
            p = row.pop("p")
            _predict(log, i, row, predictions=[p])
        for i, label in enumerate([1, 0, "cat", None, True]):
            log.labels.append_nowait(log.encode_labels("credit", [f"r{i}-0"], [label], T0 + i))
    assert compact(tmp_path, chunk_frames=2)["rows"] == 10
    (t, _), *others = _parts(tmp_path, "predlog").values()
    assert not others
    assert t.column_names[-4:] == ["a", "b", "c", "d"]
    types = {n: str(t.schema.field(n).type) for n in ("a", "b", "c", "d", "_prediction")}
    assert types == {
        "a": "double",
        "b": "string",
        "c": "bool",
        "d": "bool",
        "_prediction": "string",
    }
    assert t.column("a").to_pylist() == [None, None, 1.5, None, 2.0]
    assert t.column("b").to_pylist() == ["1", "2", "x", "y", "3.0"]
    assert t.column("c").to_pylist() == [None, None, True, False, None]
    assert t.column("d").null_count == 5
    assert t.column("_prediction").to_pylist() == ["0", "1", "yes", "no", "1"]
    assert t.column("_request_id").to_pylist() == [f"r{i}-0" for i in range(5)]
    assert read_log(tmp_path).column("b").to_pylist() == ["1", "2", "x", "y", "3.0"]
    labels = read_labels(tmp_path)
    assert labels.column("_label").to_pylist() == ["1", "0", "cat", None, "True"]


def test_live_reads_in_chunks_unify_types_like_a_whole_build(tmp_path, monkeypatch):
    """Regression: a feature of nulls only in one read of a live segment and numbers in the
    next was turned into text; the reader's chunks now take the whole build's types."""
    with PredictionLog(tmp_path) as log:
        _predict(log, 0, {"z": [None], "w": [1]}, wait=True)
        assert str(read_log(tmp_path).schema.field("z").type) == "bool"  # nulls only so far
        _predict(log, 1, {"z": [1.5], "w": [2]}, wait=True)
        seg = log.predictions.current
        # a large backlog is decoded a few frames at a time
        monkeypatch.setattr(logreader, "CHUNK_FRAMES", 1)
        for i in range(2, 6):
            _predict(log, i, {"z": [None], "w": ["t"] if i == 5 else [i]}, wait=True)
        got = read_log(tmp_path)
    assert got.column("z").type == pa.float64() and got.column("z").to_pylist()[:2] == [None, 1.5]
    (whole,) = _whole_build(seg, "predlog").values()
    assert got.column("_request_id").equals(whole.column("_request_id"))
    assert got.column("w").type == pa.string() and got.column("w").to_pylist()[-1] == "t"


def test_a_large_segment_compacts_in_bounded_memory(tmp_path):
    """Regression (soak, issue 14): compaction decoded a whole segment into Python dicts, so
    its memory grew with segment length x traffic. Python's peak must stay far below what
    decoding the whole segment takes, with Arrow holding little more than one row group."""
    n, chunk = 100_000, 2_000
    log = PredictionLog(tmp_path, recent_ids=1_000)
    folder = wal_dir(str(tmp_path), "predlog")
    folder.mkdir(parents=True)
    with open(folder / f"seg-{0:020d}-1-000001.wal", "wb") as f:
        for i in range(n):
            payload = log.encode_predictions(
                endpoint="credit",
                version=1,
                role="champion",
                request_ids=[f"r{i}"],
                features={"x": [float(i)]},
                predictions=[i % 2],
                ts_us=T0 + i,
            )
            f.write(encode_frame(payload))
    seg = segments(str(tmp_path), "predlog")[0]
    tracemalloc.start()
    sample = [orjson.loads(p) for _, p in zip(range(5_000), read_segment(seg), strict=False)]
    per_record = tracemalloc.get_traced_memory()[0] / len(sample)
    tracemalloc.stop()
    del sample
    whole = per_record * n  # what the whole segment's records took as dicts

    arrow_peak, stop = [0], threading.Event()
    base = pa.total_allocated_bytes()

    def watch() -> None:
        while not stop.is_set():
            arrow_peak[0] = max(arrow_peak[0], pa.total_allocated_bytes() - base)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    tracemalloc.start()
    try:
        done = compact(tmp_path, chunk_frames=chunk)
        python_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        stop.set()
        watcher.join()
    assert done["rows"] == n
    assert python_peak < whole / 6, (python_peak, whole)
    assert python_peak + arrow_peak[0] < whole / 3, (python_peak, arrow_peak[0], whole)
    assert pq.read_metadata(next((tmp_path / "predlog").rglob("*.parquet"))).num_rows == n
