"""Append-only segment files with checksummed frames and group commit.

The write-ahead part of the prediction log (:mod:`loopml.logs.predlog`). Written by hand
because what it needs is small and specific: the embedded databases that offer group commit
(SQLite WAL, LMDB) put every record through a B-tree and a global write lock, and Kafka-like
logs are separate services. Here:

- A frame is ``length (u32 LE) | crc32(length + payload) (u32 LE) | payload``. A reader stops
  at the first frame that is incomplete or fails its checksum: a torn tail after a crash is
  detected and skipped, and everything before it reads back (the frames are encoded and read
  in :mod:`loopml.logs.segmentfile`).
- One writer thread per log drains every record queued while its previous ``fsync`` ran and
  writes them with one ``write`` + one ``fsync`` (group commit). In durable mode a caller's
  future resolves only after the fsync of its group; in buffered mode the writer flushes on a
  timer and never fsyncs.
- ``commit_delay`` (PostgreSQL's setting of that name, with ``coming`` in the place of its
  ``commit_siblings``): when a group is ready while ``coming()`` says more callers than the
  group's own will append and wait (requests being parsed, predicted or answered), the
  writer waits that long first, so their records can share its ``fsync``. A lone request
  never waits. In two-minute runs of the issue 14 soak (1,779 req/s, one core), 1 ms took
  the serving process from 90-92% of its core (~450 fsyncs a second, each a thread wake-up
  and two GIL hand-offs) to 84-90%; waiting at every group, lone requests included, 83-86%.
- Segments roll by size and age. A process never appends to an old segment: after a restart
  it opens a new one, so a torn tail stays at the end of a closed segment. The live segment
  is held under ``flock``; compaction claims a closed segment by taking the same lock, so
  several server processes (and several compactors) can share one directory.
- A failed write or a failed roll (disk full, directory gone or read-only) puts the log in a
  *problem* state: the callers of the failed group, and every append after it, get
  :class:`~loopml.errors.UnavailableError` (503, naming the cause, never a path); the server
  reports not-ready (:attr:`SegmentLog.problem`). The writer retries every
  ``retry_seconds``: a probe file of ``PROBE_BYTES`` written and fsynced, then a fresh
  segment; when both succeed the problem clears by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopml.errors import UnavailableError
from loopml.logs.layout import SEGMENT_SUFFIX
from loopml.logs.segmentfile import encode_frame, fsync_dir

log = logging.getLogger("loopml.serve")
PROBE_BYTES = 64 << 10
SUFFIX = SEGMENT_SUFFIX


class _SyncWaiter:
    __slots__ = ("error", "event")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: BaseException | None = None


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for fut in futures:
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)


class SegmentLog:
    """A directory of segment files written by one writer thread with group commit."""

    def __init__(
        self,
        directory: str | Path,
        *,
        durable: bool = True,
        segment_bytes: int = 64 << 20,
        segment_seconds: float = 600.0,
        flush_seconds: float = 0.2,
        retry_seconds: float = 1.0,
        commit_delay: float = 0.0,
        coming: Callable[[], int] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.retry_seconds = retry_seconds
        self.problem: str | None = None  # why the log cannot be written now (see the docstring)
        self._retry_at = 0.0
        self.durable = durable
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        self.flush_seconds = flush_seconds
        self.commit_delay = commit_delay
        # who will append and wait next (see _more_coming); only a durable log waits for them
        self._coming = coming if durable and commit_delay > 0 else None
        self.fsyncs = 0
        self.groups = 0
        self.records = 0
        self.fsync_seconds = 0.0
        self.last_fsync_seconds = 0.0
        self._cond = threading.Condition()
        self._pending: list[bytes] = []
        self._waiters: list[Any] = []
        # records appended on the event loop in its current turn (see _stage)
        self._staged: list[bytes] = []
        self._staged_waiters: list[asyncio.Future[None]] = []
        self._staged_loop: asyncio.AbstractEventLoop | None = None
        self._hand_over_due = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._fd = -1
        self._path: Path | None = None
        self._size = 0
        self._opened = 0.0
        self._seq = 0

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> SegmentLog:
        """Start a new segment and the writer thread; old segments stay for compaction."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._roll()
        self._thread = threading.Thread(target=self._run, name=f"wal:{self.directory}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Write what is queued, fsync, and stop the writer."""
        self._hand_over()
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._fd >= 0:
            with contextlib.suppress(OSError):  # a full disk: what is written stays written
                if self._size:
                    os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    @property
    def current(self) -> Path | None:
        """The segment being written."""
        return self._path

    def segments(self) -> list[Path]:
        """Every segment file in the directory, oldest first (the live one included)."""
        return sorted(self.directory.glob("*" + SUFFIX))

    @property
    def queued(self) -> int:
        return len(self._pending) + len(self._staged)

    # -- appending ------------------------------------------------------------------------

    def append_nowait(self, payload: bytes) -> None:
        """Queue a record without waiting for it to reach the disk."""
        frame = encode_frame(payload)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop: straight to the writer
            with self._cond:
                self._check_open()
                self._pending.append(frame)
                if self.durable:
                    self._cond.notify()
            return
        self._check_open()
        self._stage(loop, frame, None)

    def append_future(self, payload: bytes) -> asyncio.Future[None]:
        """Queue a record; the future resolves once it is written (and fsynced if durable)."""
        frame = encode_frame(payload)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._check_open()
        self._stage(loop, frame, fut)
        return fut

    def _stage(
        self, loop: asyncio.AbstractEventLoop, frame: bytes, fut: asyncio.Future[None] | None
    ) -> None:
        """Hold a record appended on the event loop until the loop's turn ends, then hand all
        of that turn's records to the writer at once (:meth:`_hand_over`): the answers of one
        model batch become one group, one ``fsync`` and one wake-up of the writer, instead of
        a wake-up (and a GIL hand-off) per record that splits the batch over two fsyncs."""
        if self._staged_loop is not loop:
            self._hand_over()  # another loop staged before (tests run several): its turn ends
            self._staged_loop = loop
        self._staged.append(frame)
        if fut is not None:
            self._staged_waiters.append(fut)
        if not self._hand_over_due:
            self._hand_over_due = True
            loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        """Give the staged records to the writer (refusing them if the log cannot take them)."""
        self._hand_over_due = False
        frames, waiters = self._staged, self._staged_waiters
        if not frames:
            return
        self._staged, self._staged_waiters = [], []
        with self._cond:
            try:
                self._check_open()
            except UnavailableError as exc:  # closed or failed since: nothing was written
                _settle(waiters, exc)
                return
            self._pending.extend(frames)
            self._waiters.extend(waiters)
            self._cond.notify()

    async def append(self, payload: bytes) -> None:
        """Append and wait until the record is on disk (durable) or written (buffered)."""
        await self.append_future(payload)

    def append_sync(self, payload: bytes) -> None:
        """Blocking :meth:`append` for code outside an event loop."""
        frame = encode_frame(payload)
        waiter = _SyncWaiter()
        with self._cond:
            self._check_open()
            self._pending.append(frame)
            self._waiters.append(waiter)
            self._cond.notify()
        waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error

    def _check_open(self) -> None:
        if self._closing or self._thread is None:
            raise UnavailableError(
                "The prediction log is not open (the server is starting or shutting down). "
                "Retry in a moment.",
                field="server",
            )
        if self.problem is not None:
            raise self.unavailable()

    def unavailable(self) -> UnavailableError:
        """The 503 of the problem state: what is wrong and what to do, without paths."""
        return UnavailableError(
            f"Refused: {self.problem}. Nothing was written. Free space on (or fix the "
            "permissions of) the server's log directory; the server retries by itself and is "
            "ready again (GET /v2/health/ready) once the log can be written.",
            field="log",
            retry_after=max(1, round(self.retry_seconds)),
        )

    def _fail(self, exc: OSError, doing: str) -> None:
        name = errno.errorcode.get(exc.errno or 0, "error")
        problem = f"the {self.kind} log cannot be written ({name}: {exc.strerror or exc})"
        if self.problem is None:
            log.error("%s while trying to %s in %s", problem, doing, self.directory)
        self.problem = problem
        self._retry_at = time.monotonic() + self.retry_seconds

    @property
    def kind(self) -> str:
        """'prediction' or 'label' (from the directory layout ``<kind>/_wal``)."""
        parent = self.directory.parent.name
        return {"predlog": "prediction", "labels": "label"}.get(parent, parent or "write-ahead")

    def _recover(self) -> None:
        """Probe the directory, then start a fresh segment; clears :attr:`problem`."""
        if time.monotonic() < self._retry_at:
            return
        probe = self.directory / f".probe-{os.getpid()}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(bytes(PROBE_BYTES))
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
                with contextlib.suppress(OSError):
                    probe.unlink()
            self._roll()
        except OSError as exc:
            self._fail(exc, "recover")
            return
        log.warning("the %s log can be written again in %s", self.kind, self.directory)
        self.problem = None

    # -- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending and not self._closing:
                    self._cond.wait(self._wait_seconds())
                gather = self._more_coming()
            if gather:  # let the records on their way join this group: one fsync for both
                time.sleep(self.commit_delay)
            with self._cond:
                frames, waiters = self._pending, self._waiters
                self._pending, self._waiters = [], []
                closing = self._closing
            if frames:
                self._write_group(frames, waiters)
            if self.problem is not None:
                if not closing:
                    self._recover()
            elif self._segment_full():
                try:
                    self._roll()
                except OSError as exc:  # disk full or directory gone: refuse until it heals
                    self._fail(exc, "start a new segment")
            if closing and not frames:
                return

    def _more_coming(self) -> bool:
        """Whether to hold the group ``commit_delay`` longer: records are pending, the log
        stays open, and ``coming()`` (the callers that will append a record and wait for it,
        these included) counts more than the group's waiters: more records are on their way."""
        if self._coming is None or not self._pending or self._closing:
            return False
        return self._coming() > len(self._waiters)

    def _wait_seconds(self) -> float | None:
        if self.problem is not None:
            return max(self._retry_at - time.monotonic(), 0.01)
        if self._size == 0:  # an empty segment is never rolled, however old: nothing to time
            return None if self.durable else self.flush_seconds
        age_left = self.segment_seconds - (time.monotonic() - self._opened)
        timeout = age_left if self.durable else min(self.flush_seconds, age_left)
        return max(timeout, 0.001)

    def _write_group(self, frames: list[bytes], waiters: list[Any]) -> None:
        error: BaseException | None = None
        data = b"".join(frames)
        try:
            if self.problem is not None or self._fd < 0:
                raise OSError(errno.EIO, self.problem or "no open segment")
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            if self.durable:
                t0 = time.perf_counter()
                os.fsync(self._fd)
                self.last_fsync_seconds = time.perf_counter() - t0
                self.fsync_seconds += self.last_fsync_seconds
                self.fsyncs += 1
            self._size += len(data)
            self.records += len(frames)
            self.groups += 1
        except OSError as exc:
            if self.problem is None:
                self._fail(exc, f"write {len(frames)} records")
            error = self.unavailable()
            # what reached the file is a torn tail now; never append after it
            self._size = self.segment_bytes
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for w in waiters:
            if isinstance(w, _SyncWaiter):
                w.error = error
                w.event.set()
            else:
                by_loop.setdefault(w.get_loop(), []).append(w)
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile
                loop.call_soon_threadsafe(_settle, futures, error)

    def _segment_full(self) -> bool:
        if self._size >= self.segment_bytes:
            return True
        return self._size > 0 and time.monotonic() - self._opened >= self.segment_seconds

    def _roll(self) -> None:
        """Close the live segment (releasing its lock) and start a new one."""
        if self._fd >= 0:
            try:
                os.close(self._fd)
            finally:
                self._fd = -1
        self._seq += 1
        name = f"seg-{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}{SUFFIX}"
        path = self.directory / name
        # lock under a name compaction does not list, then rename: no compactor can claim
        # (and delete) a fresh segment before its writer holds the lock
        tmp = self.directory / f".{name}.new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(tmp, path)
        fsync_dir(self.directory)
        self._fd, self._path, self._size, self._opened = fd, path, 0, time.monotonic()
