from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from loopml.logs import segmentfile, wal


def _payloads(n: int) -> list[bytes]:
    return [f"record-{i}".encode() * (i % 7 + 1) for i in range(n)]


def test_frames_round_trip_and_torn_tail_is_skipped():
    data = b"".join(segmentfile.encode_frame(p) for p in _payloads(20))
    frames, end = segmentfile.scan_frames(data)
    assert frames == _payloads(20) and end == len(data)
    for cut in (1, 3, 8, 9):  # inside the payload, inside the header
        frames, end = segmentfile.scan_frames(data[:-cut])
        assert frames == _payloads(19)
    frames, _ = segmentfile.scan_frames(data + b"\x05\x00\x00\x00garbage!!")
    assert frames == _payloads(20)
    flipped = bytearray(data)
    flipped[len(data) - 2] ^= 0xFF  # a corrupt last payload fails its checksum
    assert segmentfile.scan_frames(bytes(flipped))[0] == _payloads(19)
    huge = data + (2**31).to_bytes(4, "little") + b"\x00" * 4
    assert segmentfile.scan_frames(huge)[0] == _payloads(20)


def test_sync_append_reopen_continues_in_a_new_segment(tmp_path):
    log = wal.SegmentLog(tmp_path).open()
    for p in _payloads(5):
        log.append_sync(p)
    first = log.current
    log.close()
    with open(first, "ab") as f:
        f.write(b"\x10\x00\x00\x00torn")
    log = wal.SegmentLog(tmp_path).open()
    log.append_sync(b"after")
    assert log.current != first
    log.close()
    got = [p for seg in sorted(tmp_path.glob("*.wal")) for p in segmentfile.read_segment(seg)]
    assert got == [*_payloads(5), b"after"]


def test_group_commit_groups_under_concurrency(tmp_path):
    log = wal.SegmentLog(tmp_path).open()

    async def run() -> None:
        await asyncio.gather(*(log.append(b"x" * 100) for _ in range(500)))

    asyncio.run(run())
    log.close()
    assert log.records == 500
    assert log.fsyncs < 250, log.fsyncs  # many records share one fsync
    assert sum(1 for seg in log.segments() for _ in segmentfile.read_segment(seg)) == 500


def test_segments_roll_by_size_and_live_one_cannot_be_claimed(tmp_path):
    log = wal.SegmentLog(tmp_path, segment_bytes=1000).open()
    for _ in range(25):  # 108-byte frames: rolls after 10 and 20, none after the last
        log.append_sync(b"y" * 100)
    segs = log.segments()
    assert len(segs) >= 3
    assert segmentfile.claim(log.current) is None
    fd = segmentfile.claim(segs[0])
    assert fd is not None
    os.close(fd)
    log.close()
    assert sum(1 for s in segs for _ in segmentfile.read_segment(s)) == 25


def test_buffered_mode_flushes_without_fsync(tmp_path):
    log = wal.SegmentLog(tmp_path, durable=False, flush_seconds=0.01).open()
    for p in _payloads(50):
        log.append_nowait(p)
    log.close()
    assert log.fsyncs == 0
    assert [p for s in log.segments() for p in segmentfile.read_segment(s)] == _payloads(50)


def test_append_before_open_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="open"):
        wal.SegmentLog(tmp_path).append_nowait(b"x")


def _switches(thread_id: int) -> int:
    status = Path(f"/proc/self/task/{thread_id}/status").read_text()
    return sum(int(ln.split()[1]) for ln in status.splitlines() if "ctxt_switches:" in ln)


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads /proc")
@pytest.mark.parametrize("durable", [True, False])
def test_an_idle_log_past_its_segment_age_sleeps(tmp_path, durable):
    # an empty segment older than segment_seconds is never rolled; its writer once woke
    # every millisecond for it (a thread spinning at 1 kHz beside the event loop, forever,
    # on every log that sees no traffic: the refused log of a healthy server)
    log = wal.SegmentLog(tmp_path, durable=durable, segment_seconds=0.05).open()
    try:
        time.sleep(0.2)  # past the segment's age
        assert log._thread is not None and log._thread.native_id is not None
        before = _switches(log._thread.native_id)
        time.sleep(0.5)
        woke = _switches(log._thread.native_id) - before
        assert woke <= 10, f"the idle writer woke {woke} times in 0.5 s"
        log.append_sync(b"still answers")  # a record still wakes it at once
    finally:
        log.close()


def test_commit_delay_gathers_records_on_their_way_and_never_holds_a_lone_one(tmp_path):
    coming = [1]  # callers that will append and wait, the group's own included
    log = wal.SegmentLog(tmp_path, commit_delay=0.3, coming=lambda: coming[0]).open()
    try:
        t0 = time.monotonic()
        log.append_sync(b"alone")  # nobody else on the way: written at once
        assert time.monotonic() - t0 < 0.2 and log.groups == 1
        coming[0] = 2
        first = threading.Thread(target=log.append_sync, args=(b"one",))
        first.start()
        time.sleep(0.05)  # the writer holds "one" for the record on its way ...
        log.append_sync(b"two")
        first.join()
        assert log.groups == 2  # ... which shares its fsync
    finally:
        log.close()
    undelayed = wal.SegmentLog(tmp_path / "b", commit_delay=0.0, coming=lambda: 2).open()
    try:
        first = threading.Thread(target=undelayed.append_sync, args=(b"one",))
        first.start()
        time.sleep(0.05)
        undelayed.append_sync(b"two")
        first.join()
        assert undelayed.groups == 2  # without the delay, two groups
    finally:
        undelayed.close()
