from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from loopml.logs import segmentfile
from loopml.logs.compaction import compact
from loopml.logs.logreader import read_labels, read_log
from loopml.logs.predlog import PredictionLog
from loopml.serve.wire.ids import new_request_ids

T0 = int(datetime(2026, 11, 23, 10, 30, tzinfo=UTC).timestamp() * 1e6)
HOUR = 3_600_000_000


def _log_some(log: PredictionLog, n_requests: int = 4, ts: int = T0, endpoint: str = "credit"):
    ids = []
    for i in range(n_requests):
        rids = new_request_ids(2)
        ids += rids
        log.log_predictions_sync(
            endpoint=endpoint,
            version=3 + i % 2,
            role="champion" if i % 2 else "canary",
            request_ids=rids,
            features={"x": np.array([1.0, 2.5]), "city": np.array(["rome", None], dtype=object)},
            predictions=np.array([0, 1]),
            probabilities=np.array([[0.8, 0.2], [0.3, 0.7]]),
            latency_ms=1.25,
            entity_key="u1" if i == 0 else None,
            flags=np.array([None, "unseen:city"], dtype=object),
            ts_us=ts + i * HOUR,
        )
    return ids


def test_records_round_trip_before_and_after_compaction(tmp_path):
    with PredictionLog(tmp_path) as log:
        ids = _log_some(log)
        before = read_log(tmp_path, "credit")
    assert before.column("_request_id").to_pylist() == ids
    row = before.slice(0, 2).to_pylist()
    assert row[0]["_version"] == 3 and row[0]["_role"] == "canary"
    assert row[0]["_entity_key"] == "u1" and row[0]["_latency_ms"] == 1.25
    assert row[0]["_ts"] == datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
    assert [r["_prediction"] for r in row] == [0.0, 1.0]
    assert [r["_score"] for r in row] == [0.2, 0.7]
    assert row[1]["_proba"] == [0.3, 0.7] and row[1]["_flags"] == "unseen:city"
    assert [r["x"] for r in row] == [1.0, 2.5] and [r["city"] for r in row] == ["rome", None]
    assert before.schema.field("_ts").type == pa.timestamp("us", tz="UTC")
    stats = compact(tmp_path)
    assert stats == {"segments": 3, "rows": 8}  # predictions + (empty) labels, refused segments
    assert not list((tmp_path / "predlog" / "_wal").glob("*.wal"))
    after = read_log(tmp_path, "credit")
    assert after.equals(before)
    # the monitor's view: Arrow dataset discovery with hive partitions skips _wal
    dataset = ds.dataset(tmp_path / "predlog", format="parquet", partitioning="hive")
    t = dataset.to_table()
    assert t.num_rows == 8 and set(t.column("hour").to_pylist()) == {
        2026112310,
        2026112311,
        2026112312,
        2026112313,
    }
    assert set(t.column("endpoint").to_pylist()) == {"credit"}
    window = read_log(tmp_path, "credit", datetime(2026, 11, 23, 11), datetime(2026, 11, 23, 13))
    assert window.num_rows == 4


def test_live_segments_are_read_incrementally_and_completely(tmp_path):
    """Repeated reads of a growing segment (the controller's pattern) see every record once,
    including one whose frame was only half written at the previous read."""
    with PredictionLog(tmp_path) as log:
        ids = _log_some(log, 2)
        assert read_log(tmp_path, "credit").column("_request_id").to_pylist() == ids
        seg = log.predictions.current
        ids += _log_some(log, 2, ts=T0 + 2 * HOUR)
        ids += _log_some(log, 1, endpoint="other")
        size = os.path.getsize(seg)
        data = seg.read_bytes()
    # a reader that came while the last frame was half written
    half = tmp_path / "predlog" / "_wal" / ("z" + seg.name)
    half.write_bytes(data[: size - 7])
    got = read_log(tmp_path).column("_request_id").to_pylist()
    with open(half, "ab") as f:
        f.write(data[size - 7 :])
    again = read_log(tmp_path).column("_request_id").to_pylist()
    assert sorted(got) == sorted(ids + ids[:-2])  # the half-written frame is not read yet
    assert sorted(again) == sorted(ids * 2)  # both files: every record, none twice
    assert read_log(tmp_path, "other").num_rows == 2 * 2
    assert read_log(tmp_path, "credit").num_rows == 2 * 8


def test_torn_tail_is_skipped(tmp_path):
    with PredictionLog(tmp_path) as log:
        ids = _log_some(log, 3)
        seg = log.predictions.current
    with open(seg, "r+b") as f:
        f.truncate(os.path.getsize(seg) - 5)
    assert read_log(tmp_path).column("_request_id").to_pylist() == ids[:4]
    with open(seg, "ab") as f:
        f.write(b"\x00garbage" * 10)
    assert read_log(tmp_path).column("_request_id").to_pylist() == ids[:4]
    compact(tmp_path)
    assert read_log(tmp_path).column("_request_id").to_pylist() == ids[:4]


def test_crash_mid_compaction_neither_loses_nor_duplicates(tmp_path):
    with PredictionLog(tmp_path) as log:
        ids = _log_some(log)
        seg = log.predictions.current
    # simulate a crash after some part files were written, before the .done marker
    from loopml.logs.compaction import _compact_segment

    _compact_segment(tmp_path, "predlog", seg)
    assert sorted(read_log(tmp_path).column("_request_id").to_pylist()) == sorted(ids)
    compact(tmp_path)  # the rerun overwrites the same part files
    assert sorted(read_log(tmp_path).column("_request_id").to_pylist()) == sorted(ids)
    # crash after the marker, before the delete: readers use Parquet, rerun deletes
    with PredictionLog(tmp_path) as log:
        more = _log_some(log, 1)
        seg = log.predictions.current
    _compact_segment(tmp_path, "predlog", seg)
    seg.with_suffix(".done").touch()
    assert sorted(read_log(tmp_path).column("_request_id").to_pylist()) == sorted(ids + more)
    compact(tmp_path)
    assert sorted(read_log(tmp_path).column("_request_id").to_pylist()) == sorted(ids + more)


def test_kill_9_keeps_every_acknowledged_record(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("crash_writer.py")), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    acked = []
    for line in proc.stdout:
        acked.append(line.strip())
        if len(acked) >= 400:
            break
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate()
    acked += rest.split()
    logged = read_log(tmp_path, "credit").column("_request_id").to_pylist()
    assert set(acked) <= set(logged)
    assert len(logged) == len(set(logged))
    segments = list((tmp_path / "predlog" / "_wal").glob("*.wal"))
    assert len(segments) > 1  # it rolled, so recovery crosses segment files
    compact(tmp_path)
    assert set(acked) <= set(read_log(tmp_path, "credit").column("_request_id").to_pylist())
    # a restarted log continues next to what the dead process left
    with PredictionLog(tmp_path) as log:
        again = _log_some(log, 1, ts=int(datetime.now(UTC).timestamp() * 1e6))
    assert set(again) <= set(read_log(tmp_path, "credit").column("_request_id").to_pylist())


def test_labels_known_ids_and_unknown_reported(tmp_path):
    now = int(datetime.now(UTC).timestamp() * 1e6)
    with PredictionLog(tmp_path) as log:
        ids = _log_some(log, 2, ts=now)
        unknown = asyncio.run(log.log_labels({ids[0]: 1, ids[3]: 0, "nope": 1}))
        assert unknown == ["nope"]
    labels = read_labels(tmp_path, "credit")
    assert labels.column("_request_id").to_pylist() == [ids[0], ids[3]]
    assert labels.column("_label").to_pylist() == [1.0, 0.0]
    compact(tmp_path)
    # a new process has no memory of them: found by the id's hour in Parquet
    with PredictionLog(tmp_path) as log:
        assert len(log._recent) == 0
        assert log.known_request_ids([ids[1], "nope", new_request_ids(1)[0]]) == {ids[1]: "credit"}
        unknown = asyncio.run(log.log_labels({ids[1]: "yes"}))
        assert unknown == []
        # and found in a segment not compacted yet
        late = _log_some(log, 1, ts=now)
        log._recent.clear()
        assert log.known_request_ids(late) == dict.fromkeys(late, "credit")
    labels = read_labels(tmp_path, "credit")
    assert sorted(labels.column("_request_id").to_pylist()) == sorted([ids[0], ids[3], ids[1]])


def test_group_commit_under_concurrency_64(tmp_path):
    log = PredictionLog(tmp_path).open()

    async def one() -> None:
        for _ in range(10):
            await log.log_predictions(
                endpoint="e",
                version=1,
                role="champion",
                request_ids=new_request_ids(1),
                features={"x": np.array([1.0])},
                predictions=np.array([1]),
            )

    async def run() -> None:
        await asyncio.gather(*(one() for _ in range(64)))

    asyncio.run(run())
    log.close()
    assert log.predictions.records == 640
    assert log.predictions.fsyncs < 640 / 4
    assert read_log(tmp_path, "e").num_rows == 640


def test_buffered_mode_and_segments_of_other_processes_are_left_alone(tmp_path):
    log = PredictionLog(tmp_path, durable=False).open()
    _log_some(log, 2)
    live = log.predictions.current
    assert compact(tmp_path)["segments"] == 0  # every live segment is locked
    assert live.exists()
    log.close()
    assert log.predictions.fsyncs == 0
    assert compact(tmp_path) == {"segments": 3, "rows": 4}  # predictions, labels, refused
    assert read_log(tmp_path).num_rows == 4
    assert segmentfile.claim(live) is None  # gone


def test_a_read_racing_the_compactor_neither_misses_nor_doubles(tmp_path):
    """A reader (or a label lookup) that lists a segment just before the compactor turns it
    into Parquet and deletes it still finds the segment's rows exactly once."""
    import threading

    from loopml.logs.logreader import lookup_request_ids

    ids: list[str] = []
    for _ in range(60):  # Parquet parts for the reader to wade through
        with PredictionLog(tmp_path) as log:
            ids += _log_some(log, 2)
    compact(tmp_path)
    for round_ in range(6):  # each round: fresh segments, so no reader has decoded them yet
        new: list[str] = []
        for _ in range(20):
            with PredictionLog(tmp_path) as log:
                new += _log_some(log, 2)
        ids += new
        compactor = threading.Thread(target=compact, args=(tmp_path,))
        compactor.start()
        if round_ % 2:
            found = lookup_request_ids(tmp_path, set(new))
        else:
            got = read_log(tmp_path, "credit").column("_request_id").to_pylist()
        compactor.join()
        if round_ % 2:
            assert found == dict.fromkeys(new, "credit")
        else:
            assert sorted(got) == sorted(ids)
