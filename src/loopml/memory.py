"""Giving memory back to the operating system after a long pass (a monitoring pass, a
controller pass, a compaction), in the processes that run them beside the server.

A monitoring pass builds Arrow tables and pandas frames of a few hundred megabytes and drops
them; CPython's allocator, pyarrow's pool (mimalloc or jemalloc) and glibc's malloc all keep
freed memory for reuse instead of returning it, so without this a long-lived process kept
~100-200 MB more after every pass (measured in the issue 14 soak). No library offers the three
steps together: :func:`gc.collect` frees what only cycles hold, pyarrow's
``release_unused`` returns its pool's free pages, and glibc's ``malloc_trim(0)`` (through
ctypes: the standard library has no binding) returns the free top and middle of its heaps.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import sys
from collections.abc import Callable


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
