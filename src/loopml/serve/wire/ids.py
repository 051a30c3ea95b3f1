"""Request ids: UUIDv7 strings (RFC 9562), time-ordered, so a label's request id tells
which hour of the prediction log to look in.

Python 3.11's ``uuid`` has no ``uuid7``; this is the 48-bit millisecond timestamp, the
version and variant bits, and 74 random bits from ``os.urandom``.
"""

from __future__ import annotations

import os
import time

_MASK_RAND_A = 0x0FFF
_VARIANT = 0x8000_0000_0000_0000
_MASK_RAND_B = 0x3FFF_FFFF_FFFF_FFFF


def new_request_ids(n: int) -> list[str]:
    """``n`` fresh UUIDv7 strings, one ``urandom`` call for all of them."""
    ms = time.time_ns() // 1_000_000
    rand = os.urandom(10 * n)
    out = []
    for i in range(n):
        r = int.from_bytes(rand[10 * i : 10 * i + 10], "big")
        hi = (ms << 16) | 0x7000 | ((r >> 64) & _MASK_RAND_A)
        lo = _VARIANT | (r & _MASK_RAND_B)
        h = f"{hi:016x}{lo:016x}"
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out
