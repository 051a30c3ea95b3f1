"""The prediction log on an S3 root (the S3 API server of ``tests/s3server.py``), in process:
segments stay in each replica's local spool, compaction uploads one part per segment, endpoint
and hour under a name holding the replica and the segment, and deletes the segment only after
every upload succeeded; labels of predictions another replica has not compacted yet wait."""

from __future__ import annotations

import asyncio

import fsspec
import numpy as np
import pytest

from loopml.errors import StorageError
from loopml.logs.compaction import compact
from loopml.logs.layout import LogLocation, segments
from loopml.logs.logfiles import LogFiles
from loopml.logs.logreader import read_labels, read_log
from loopml.logs.pending import pending_dir
from loopml.logs.predlog import PredictionLog
from loopml.serve.wire.ids import new_request_ids
from tests.s3server import BUCKET, FAIL_FAST, CuttingProxy, free_port

ROOT = f"s3://{BUCKET}/logs"


def _where(tmp_path, name: str) -> LogLocation:
    return LogLocation(ROOT, str(tmp_path / f"spool-{name}"), name)


def _predict(log: PredictionLog, n: int, endpoint: str = "credit") -> list[str]:
    ids = new_request_ids(n)
    log.log_predictions_sync(
        endpoint=endpoint,
        version=1,
        role="champion",
        request_ids=ids,
        features={"x": np.arange(n, dtype=float)},
        predictions=np.zeros(n, dtype=int),
        probabilities=np.full((n, 2), 0.5),
    )
    return ids


def _parts(s3, kind: str = "predlog") -> list[str]:
    s3.invalidate_cache()
    return sorted(p.rsplit("/", 1)[-1] for p in s3.find(f"{BUCKET}/logs/{kind}"))


def test_parts_are_named_after_replica_and_segment_and_reruns_replace_them(s3, tmp_path):
    where = _where(tmp_path, "host-a")
    with PredictionLog(where) as log:
        ids = _predict(log, 5)
        seg = log.predictions.current
    assert seg is not None and str(seg).startswith(where.spool)  # the WAL is on local disk
    assert read_log(where, "credit").column("_request_id").to_pylist() == ids
    done = compact(where)
    assert done["segments"] >= 1 and done["rows"] == 5
    assert _parts(s3) == [f"part-{seg.stem}--host-a.parquet"]
    assert segments(where.spool, "predlog") == []  # deleted once uploaded
    # a reader on another machine (no spool) sees the same rows, from S3 alone
    remote = LogLocation(ROOT)
    assert read_log(remote, "credit").column("_request_id").to_pylist() == ids
    assert LogFiles(remote).endpoints() == ["credit"]


def test_a_failed_upload_keeps_the_segment_and_the_next_compaction_retries(
    s3, s3_url, tmp_path, monkeypatch
):
    """Guards against a network error losing a segment or leaving half a part visible."""
    where = _where(tmp_path, "a")
    with PredictionLog(where) as log:
        ids = _predict(log, 2000)
    seg = segments(where.spool, "predlog")
    proxy = CuttingProxy(s3_url, limit=20_000)  # cuts the upload's body
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setitem(fsspec.config.conf, "s3", FAIL_FAST)
    with pytest.raises(StorageError, match=r"Could not write the log part 's3://") as err:
        compact(where)
    assert "nothing is lost" in err.value.message and "tries again" in err.value.message
    assert proxy.cut >= 1
    proxy.close()
    assert segments(where.spool, "predlog") == seg  # kept, not marked done
    assert not seg[0].with_suffix(".done").exists()
    assert _parts(s3) == []  # no half-written part
    # unreachable altogether: the same clear error, on write and on read
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StorageError, match="Could not write"):
        compact(where)
    with pytest.raises(StorageError, match="Could not list 's3://loopml-test/logs/predlog"):
        read_log(where, "credit")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_url)
    # the segment still holds every row, and the next compaction uploads it
    assert sorted(read_log(where, "credit").column("_request_id").to_pylist()) == sorted(ids)
    compact(where)
    assert segments(where.spool, "predlog") == []
    got = read_log(LogLocation(ROOT), "credit").column("_request_id").to_pylist()
    assert sorted(got) == sorted(ids)


def test_a_label_waits_for_a_prediction_another_replica_has_not_compacted(s3, tmp_path):
    """Replica A answered; the label reaches replica B before A compacts: it is kept (not
    refused), looked up again at B's compactions, and lands once A's part is on S3."""
    a, b = _where(tmp_path, "a"), _where(tmp_path, "b")
    log_a = PredictionLog(a).open()
    ids = _predict(log_a, 3)
    old = "0190aaaa-0000-7000-8000-000000000000"  # a UUIDv7 from 2024: too old to wait for
    with PredictionLog(b) as log_b:
        assert log_b.known_request_ids(ids) == {}  # A's segment is out of B's sight
        labels = {ids[0]: 1, ids[1]: 0, old: 1, "not-a-uuid7": 1}
        assert asyncio.run(log_b.log_labels(labels)) == list(labels)
        held = asyncio.run(log_b.hold_labels(labels, wait=3600))
    assert held == ids[:2]
    first = compact(b)  # A has not compacted: the labels wait in B's spool
    assert first.get("labels_waiting") == 2 and read_labels(ROOT).num_rows == 0
    assert len(list(pending_dir(b.spool).glob("*.wal"))) == 1  # the next generation
    log_a.close()
    compact(a)
    second = compact(b)
    assert second.get("labels_resolved") == 2 and "labels_waiting" not in second
    got = read_labels(LogLocation(ROOT), "credit").sort_by("_request_id")
    assert got.column("_request_id").to_pylist() == sorted(ids[:2])
    assert dict(zip(ids[:2], [1.0, 0.0], strict=True)) == dict(
        zip(got.column("_request_id").to_pylist(), got.column("_label").to_pylist(), strict=True)
    )
    assert list(pending_dir(b.spool).glob("*.wal")) == []
    assert compact(b).get("labels_resolved") is None  # nothing resolved twice


def test_a_held_label_is_dropped_after_label_wait_and_scoped_keys_stay_scoped(s3, tmp_path):
    a = _where(tmp_path, "a")
    with PredictionLog(a) as log:
        ids = _predict(log, 2, endpoint="credit")
    with PredictionLog(_where(tmp_path, "b")) as log_b:
        # a key scoped to another endpoint: its label never lands on 'credit'
        asyncio.run(log_b.hold_labels({ids[0]: 1}, wait=3600, allowed=["fraud"]))
        asyncio.run(log_b.hold_labels({ids[1]: 1}, wait=3600))
    compact(a)
    # with label_wait 0 the waiting is over: found ids land, nothing waits any more
    done = compact(_where(tmp_path, "b"), label_wait=0)
    assert done.get("labels_resolved") == 1 and done.get("labels_dropped") == 1
    assert read_labels(ROOT).column("_request_id").to_pylist() == [ids[1]]
