"""Giving memory back to the operating system after a long pass (a monitoring pass, a
controller pass, a compaction), in the processes that run them beside the server.

A monitoring pass builds Arrow tables and pandas frames of a few hundred megabytes and drops
them; CPython's allocator, pyarrow's pool (mimalloc or jemalloc) and glibc's malloc all keep
freed memory for reuse instead of returning it, so without this a long-lived process kept
~100-200 MB more after every pass (measured in the issue 14 soak). No library offers the three
steps together: :func:`gc.collect` frees what only cycles hold, pyarrow's
``release_unused`` returns its pool's free pages, and glibc's ``malloc_trim(0)`` (through
ctypes: the standard library has no binding) returns the free top and middle of its heaps.
The processes beside the server also take Arrow's buffers from jemalloc (:func:`use_jemalloc`),
which keeps less after a pass than pyarrow's default pool.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import os
import sys
import time
from collections.abc import Callable, Iterator


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


def rss_mb() -> float | None:
    """This process's resident memory in MB, None where ``/proc`` is not there."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class Budget:
    """When a long-lived worker should hand over to a fresh process: its resident memory
    after a pass grew past ``growth`` (a fraction) over the highest it was after its first
    ``warmup`` passes.

    Why a budget and not only :func:`release_memory`: what a pass frees is returned to the
    system only where whole pages (glibc), pools (mimalloc) or 1 MiB arenas (CPython's
    allocator) came free; objects that outlive a pass scatter over the pages its short-lived
    ones used, and the process keeps a little more after every pass. In the issue 14 soak
    the background process grew 3-7 MB a minute with no growth of Python objects or of
    Arrow's live buffers, and the compactor 1-2 MB a minute. A fresh process starts from
    its import footprint, which bounds the memory of a server that runs for months whatever
    the cause (what web servers' ``max_requests`` and Celery's
    ``worker_max_memory_per_child`` do).

    Why the highest of a few passes: the first pass of a fresh process may be a light one
    (no window closed yet, or only what changed since its predecessor's last pass). Measured
    from the first alone, the background process of the 2026-12-06 soak (1,000 req/s) kept
    343, 347 and 391 MB after its first three passes and handed over every three minutes,
    paying its imports each time, with nothing growing."""

    def __init__(self, growth: float, warmup: int = 3) -> None:
        self.growth = growth  # 0: never
        self.warmup = max(1, warmup)
        self.baseline: float | None = None
        self.last: float | None = None
        self._seen = 0  # passes counted toward the baseline

    def spent(self, first: bool = True) -> bool:
        """Whether the process should hand over now, read after a pass (and after
        :func:`release_memory`); ``first``: this pass may count toward the baseline."""
        if not self.growth:
            return False
        self.last = rss_mb()
        if self.last is None:
            return False
        if self._seen < self.warmup:
            if first:
                self._seen += 1
                self.baseline = max(self.baseline or 0.0, self.last)
            return False
        assert self.baseline is not None
        return self.last > self.baseline * (1 + self.growth)

    def __str__(self) -> str:
        return (
            f"{self.last or 0:.0f} MB resident, {self.growth:.0%} over its "
            f"{self.baseline or 0:.0f} MB after its first {self.warmup} passes"
        )


def use_jemalloc() -> str | None:
    """Make Arrow's jemalloc pool this process's default, where pyarrow was built with it;
    returns the pool's name now in use (None without pyarrow).

    For the processes beside the server (the background process, the log compactor), at
    their start. Measured on one monitoring pass over a one-minute window of 77k rows (the
    issue 14 soak's log), eight passes in a row in a fresh process: with pyarrow's default,
    mimalloc, the process peaked at 423-435 MB and kept 334-346 MB after each pass (from
    244); with jemalloc it peaked at 365-380 MB and kept 283-292 MB, as fast (2.1-2.5 s a
    pass against 2.3-2.8 s). The system allocator did worse than both."""
    try:
        import pyarrow
    except ImportError:
        return None
    with contextlib.suppress(NotImplementedError):  # no jemalloc (Windows): its default
        pyarrow.set_memory_pool(pyarrow.jemalloc_memory_pool())
    return str(pyarrow.default_memory_pool().backend_name)


def release_memory() -> None:
    """Collect cycles, then return the free memory of pyarrow's pool (when pyarrow is loaded)
    and of glibc's heaps (when the C library is glibc) to the operating system."""
    gc.collect()
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        pyarrow.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


HEAVY_LOCK = ".loopml-heavy.lock"  # in a log's spool: see one_heavy_pass


@contextlib.contextmanager
def one_heavy_pass(spool: str | None, wait: float) -> Iterator[bool]:
    """Run the block while no other heavy pass over the same log runs on this machine: a
    monitoring pass and a log compaction, in two processes beside the server, each peak a
    few hundred MB over what they keep between passes, and when they coincide the machine
    must hold both peaks at once (the issue 14 soak's highest one-second reading of all
    the server's processes came from such coincidences: 949-1,013 MB, against 845-877 MB
    medians). One at a time, the machine holds the larger of the two.

    The lock is ``flock`` on a file in ``spool`` (local: the machine's write-ahead folder),
    which the kernel drops when its holder dies, ``kill -9`` included. The block waits at
    most ``wait`` seconds for it, then runs anyway: a late compaction or monitoring pass costs
    more than a higher peak. Yields whether the block holds the lock (``False`` also where
    there is no spool or no ``flock``)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield False
        return
    if spool is None:
        yield False
        return
    try:
        fd = os.open(os.path.join(spool, HEAVY_LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # no spool folder yet, or not ours to write: nothing to share it with
        yield False
        return
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    held = False
                    break
                time.sleep(0.05)
        yield held
    finally:
        os.close(fd)  # the lock goes with the file description
