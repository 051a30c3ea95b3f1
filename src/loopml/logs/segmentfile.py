"""Segment files: encoding a frame, scanning a buffer, reading a file in batches, and
claiming a closed segment for its one consumer (:func:`consume`: compaction, the pending
labels).

The format of :mod:`loopml.logs.wal`'s segments, written by hand for the reasons given
there. A frame is ``length (u32 LE) | crc32(length + payload) (u32 LE) | payload``; a reader
stops at the first frame that is incomplete or fails its checksum (a torn tail after a
crash), and everything before it reads back.

Segments grow to hundreds of megabytes (``serve.log_segment`` seconds of traffic), so
readers take them :data:`CHUNK_FRAMES` frames at a time (:func:`frame_batches`), reading
the file :data:`READ_BYTES` at a time: what a reader holds in memory is bounded by the
chunk, never by the segment.
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from loopml.logs.layout import DONE_SUFFIX

_HEADER = struct.Struct("<II")
FRAME_HEADER = _HEADER.size  # bytes before each payload
_MAX_FRAME = 1 << 30
CHUNK_FRAMES = 20_000  # frames (records) a reader decodes at a time
READ_BYTES = 1 << 20  # bytes read from a segment file at a time (more for a larger frame)


def encode_frame(payload: bytes) -> bytes:
    """``length | crc32 | payload`` for one record."""
    length = len(payload)
    crc = zlib.crc32(payload, zlib.crc32(length.to_bytes(4, "little")))
    return _HEADER.pack(length, crc) + payload


def scan_frames(data: bytes, limit: int = -1, start: int = 0) -> tuple[list[bytes], int]:
    """The valid frames of ``data`` from ``start`` on (at most ``limit`` of them; all if
    negative) and the offset where they end.

    The offset is smaller than ``len(data)`` when the tail is torn or corrupt (or ``limit``
    frames were found before the end).
    """
    frames: list[bytes] = []
    pos, end, size = start, len(data), _HEADER.size
    left = limit
    view = memoryview(data)
    while pos + size <= end and left != 0:
        length, crc = _HEADER.unpack_from(data, pos)
        stop = pos + size + length
        if length > _MAX_FRAME or stop > end:
            break
        payload = view[pos + size : stop]
        if zlib.crc32(payload, zlib.crc32(length.to_bytes(4, "little"))) != crc:
            break
        frames.append(payload.tobytes())
        pos = stop
        left -= 1
    return frames, pos


def _missing(data: bytes, pos: int) -> int:
    """How many more bytes the frame at ``pos`` needs; 0 when it is whole (so a scan that
    stopped there found it corrupt), -1 when its length is impossible."""
    have = len(data) - pos
    if have < _HEADER.size:
        return _HEADER.size - have
    length = _HEADER.unpack_from(data, pos)[0]
    if length > _MAX_FRAME:
        return -1
    return max(_HEADER.size + length - have, 0)


def frame_batches(
    path: Path, batch: int = CHUNK_FRAMES, offset: int = 0, read_bytes: int = READ_BYTES
) -> Iterator[tuple[list[bytes], int]]:
    """The payloads of a segment file from byte ``offset`` on, ``batch`` at a time (the last
    batch may be shorter), each with the file offset just past it; up to the first torn or
    corrupt frame. The file is read ``read_bytes`` at a time (more for a larger frame).
    Raises :class:`FileNotFoundError` (at the first ``next``) if the file is gone."""
    if batch < 1:
        raise ValueError(f"a batch of frames must hold at least one frame, not {batch}")
    with open(path, "rb") as f:
        f.seek(offset)
        data, pos = b"", 0  # pos: where in data the next frame starts
        out: list[bytes] = []
        while True:
            frames, end = scan_frames(data, batch - len(out), pos)
            out.extend(frames)
            offset, pos = offset + end - pos, end
            if len(out) == batch:
                yield out, offset
                out = []
                continue
            missing = _missing(data, pos)
            more = f.read(max(read_bytes, missing)) if missing > 0 else b""
            if not more:  # the end of the file, or a corrupt frame: nothing after it counts
                break
            data, pos = (data[pos:] + more if pos < len(data) else more), 0
        if out:
            yield out, offset


def read_segment(path: Path) -> Iterator[bytes]:
    """The payloads of a segment file, up to its first torn or corrupt frame (none if the
    file is gone: compacted meanwhile)."""
    try:
        for frames, _ in frame_batches(path):
            yield from frames
    except FileNotFoundError:
        return


def claim(path: Path) -> int | None:
    """Lock a closed segment for compaction; ``None`` if a writer or compactor holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def consume(seg: Path, work: Callable[[], object]) -> bool:
    """Claim a closed segment, run ``work`` on it unless a ``.done`` marker says it ran to
    the end before, then mark it done and delete it. Each step is fsynced before the next, so
    a crash at any point leaves the segment (``work`` runs again) or its marker (only the
    deletion is left). False when a writer or another consumer holds the segment."""
    fd = claim(seg)
    if fd is None:
        return False
    try:
        marker = seg.with_suffix(DONE_SUFFIX)
        if not marker.exists():
            work()
            marker.touch()
            fsync_dir(seg.parent)
        seg.unlink()
        fsync_dir(seg.parent)
        marker.unlink()
        return True
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
