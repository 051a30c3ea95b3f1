"""Request ids: UUIDv7 strings (RFC 9562), time-ordered, so a label's request id tells
which hour of the prediction log to look in.

Python 3.11's ``uuid`` has no ``uuid7``; this is the 48-bit millisecond timestamp, the
version and variant bits, and 74 random bits from ``os.urandom``.
"""

from __future__ import annotations

import os
import threading
import time

_MASK_RAND_A = 0x0FFF
_VARIANT = 0x8000_0000_0000_0000
_MASK_RAND_B = 0x3FFF_FFFF_FFFF_FFFF


_POOL_BYTES = 1 << 16
_pool = b""
_pool_at = 0
_pool_lock = threading.Lock()


def _random_bytes(n: int) -> bytes:
    """``n`` bytes from the OS's generator, read 64 KiB at a time: ``os.urandom`` releases
    the GIL, and on a busy server each release can wait a switch interval to get it back."""
    global _pool, _pool_at
    if n > _POOL_BYTES // 4:
        return os.urandom(n)
    with _pool_lock:
        if _pool_at + n > len(_pool):
            _pool, _pool_at = os.urandom(_POOL_BYTES), 0
        out = _pool[_pool_at : _pool_at + n]
        _pool_at += n
        return out


def _forget_pool() -> None:
    """A forked child must not hand out the random bytes its parent also holds."""
    global _pool, _pool_at
    _pool, _pool_at = b"", 0


os.register_at_fork(after_in_child=_forget_pool)


def new_request_ids(n: int) -> list[str]:
    """``n`` fresh UUIDv7 strings (their random bits from one :func:`_random_bytes` call)."""
    ms = time.time_ns() // 1_000_000
    rand = _random_bytes(10 * n)
    out = []
    for i in range(n):
        r = int.from_bytes(rand[10 * i : 10 * i + 10], "big")
        hi = (ms << 16) | 0x7000 | ((r >> 64) & _MASK_RAND_A)
        lo = _VARIANT | (r & _MASK_RAND_B)
        h = f"{hi:016x}{lo:016x}"
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out
