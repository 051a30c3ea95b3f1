"""The bookkeeping of the cohort wait (:mod:`loopml.serve.inference.batching`, module
docstring): the last cohort a lane cut, and the routed requests in flight that bound what a
batch may wait for."""

from __future__ import annotations

import asyncio
import time

# the cohort wait applies while the lane's last cohort was cut less than this many delays ago
COHORT_WINDOW = 10


class InFlight:
    """Routed requests being answered (from routing until their log record is durable), and
    :meth:`coming`: how many fewer there are than at the recent peak (this window or the
    last, ``window`` seconds each). In a closed loop of N clients those are the N's requests
    between an answer and the next request, the only ones a batch can wait for; with clients
    that send on their own schedule the peak is well above the usual count."""

    __slots__ = ("_last", "_peak", "_since", "n", "window")

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self.n = 0
        self._peak = self._last = 0
        self._since = time.monotonic()

    def enter(self) -> None:
        self.n += 1
        if self.n > self._peak:
            self._peak = self.n

    def leave(self) -> None:
        self.n -= 1

    def coming(self) -> int:
        now = time.monotonic()
        if now - self._since >= self.window:
            self._last, self._peak, self._since = self._peak, self.n, now
        return max(self._peak, self._last) - self.n


class Cohort:
    """The last cohort a lane (or a batcher of its own) cut: how many routed requests it held
    and when; and, while a batcher waits for the next one to fill, its waiter and target."""

    __slots__ = ("at", "size", "target", "waiter")

    def __init__(self) -> None:
        self.size = 0
        self.at = float("-inf")
        self.target = 0
        self.waiter: asyncio.Future[None] | None = None


def wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
