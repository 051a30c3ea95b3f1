"""Reading a segment file in batches of frames, a few bytes at a time: the same payloads as
reading it whole, offsets to resume from, and the same stop at a torn or corrupt frame."""

from __future__ import annotations

import pytest

from loopml.logs.segmentfile import encode_frame, frame_batches, read_segment, scan_frames


def _payloads(n: int) -> list[bytes]:
    return [f"record-{i}:".encode() * (i % 9 + 1) for i in range(n)]


def _write(path, payloads: list[bytes], tail: bytes = b"") -> bytes:
    data = b"".join(map(encode_frame, payloads)) + tail
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("read_bytes", [1, 5, 64, 1 << 20])
def test_batches_hold_every_frame_once_with_resumable_offsets(tmp_path, read_bytes):
    seg = tmp_path / "seg.wal"
    payloads = _payloads(50)
    data = _write(seg, payloads)
    batches = list(frame_batches(seg, 7, read_bytes=read_bytes))
    assert [len(b) for b, _ in batches] == [7] * 7 + [1]
    assert [p for b, _ in batches for p in b] == payloads
    for i, (_, offset) in enumerate(batches):  # each offset ends a frame: resume there
        assert scan_frames(data[:offset])[0] == payloads[: 7 * (i + 1)]
        rest = [p for b, _ in frame_batches(seg, 3, offset, read_bytes) for p in b]
        assert rest == payloads[7 * (i + 1) :]
    assert batches[-1][1] == len(data)


def test_a_frame_larger_than_a_read_is_read_whole(tmp_path):
    seg = tmp_path / "seg.wal"
    payloads = [b"a" * 5000, b"b", b"c" * 70_000]
    _write(seg, payloads)
    assert list(frame_batches(seg, 2, read_bytes=100)) == [
        (payloads[:2], 5000 + 1 + 16),
        (payloads[2:], 5000 + 1 + 70_000 + 24),
    ]


def test_reading_stops_at_a_torn_or_corrupt_frame(tmp_path):
    seg = tmp_path / "seg.wal"
    payloads = _payloads(30)
    data = _write(seg, payloads)
    for cut in (1, 3, 8, 9):  # inside the last payload, inside its header
        seg.write_bytes(data[:-cut])
        assert list(read_segment(seg)) == payloads[:29]
        assert [p for b, _ in frame_batches(seg, 4, read_bytes=7) for p in b] == payloads[:29]
    flipped = bytearray(data)
    flipped[len(encode_frame(payloads[0])) + 10] ^= 0xFF  # the second frame fails its crc
    seg.write_bytes(bytes(flipped))
    assert list(frame_batches(seg, 4, read_bytes=3)) == [([payloads[0]], 8 + len(payloads[0]))]
    _write(seg, payloads, (2**31).to_bytes(4, "little") + b"\x00" * 4 + data)
    assert list(read_segment(seg)) == payloads  # an impossible length ends the file


def test_a_gone_file_reads_as_nothing_or_raises_for_a_reader_that_must_know(tmp_path):
    gone = tmp_path / "gone.wal"
    assert list(read_segment(gone)) == []
    with pytest.raises(FileNotFoundError):
        next(frame_batches(gone))
    with pytest.raises(ValueError, match="at least one frame"):
        next(frame_batches(gone, 0))
