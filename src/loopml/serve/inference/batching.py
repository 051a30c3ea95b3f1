"""Adaptive micro-batching for asyncio: concurrent requests share one vectorised predict.

scikit-learn's cost per ``predict`` call is nearly flat from 1 to 256 rows (~250 µs, almost
all input validation; docs/design/measurements.md, "Serving"), so rows that arrive together
should be predicted together. The batcher does not wait a fixed time: a lone request is
predicted at once; requests that arrive while a batch is being collected or predicted join
the next batch. Collection yields to the event loop and stops once ``QUIET_TURNS`` turns in a
row bring nothing new, at ``max_batch_size`` items, or after ``max_wait_ms``. So batches grow
with load, the way group commit does, with no cost when there is no concurrency.

Where predict runs (``executor``): ``inline`` in the event loop (no thread hop; the loop is
busy for the predict's duration) or ``thread`` (one worker thread per batcher; the loop
keeps parsing requests while the model runs). ``auto`` (the default) runs inline while the
measured predict CPU time stays below ``inline_below_ms`` (``serve.inline_below_ms``, 10 ms)
and moves to the thread for slow models. Inline is the cheaper of the two whenever the core is
the limit: a model thread and the loop hand the GIL back and forth at every release (a socket
write, a lock, ``os.urandom``), and each hand-off waits up to the switch interval; on the
categorical pipeline of ``bench/serving`` (3.5-5 ms a call) at c64, inline served 1,728 req/s
at 98% of the core against 1,459 req/s at 82% in the thread. Batchers that share a *lane* (the versions of one model) cut a batch only when no
other batch of the lane is predicting: with a 10% canary and a shadow on one core, their
calls otherwise interleave, each cutting a batch as soon as its own queue goes quiet
(bench/serving/categorical.py, c64: the canary's calls per request fell from 0.027 to 0.017
with the lane, the champion's from 0.035-0.040 to 0.020-0.030). MLServer's adaptive batching
waits on a queue with a timeout; BentoML's dispatcher sheds load with 503s
(docs/design/measurements.md, "Serving"); neither fits, hence this small module.

The cohort wait (``delay_ms``, ``serve.batch_delay_ms``, 1 ms). Under steady independent
traffic the quiet turns cut small batches: at 1,800 req/s from 32 paced connections (the
soak), the champion's calls held 2.8 requests and the 10% canary's 1.2, so a cheap model was
called ~800 times a second and scikit-learn's fixed cost per call (~210 us for a
LogisticRegression, most of it input checks) was a fifth of the serving core. So after its
quiet turns a batcher whose lane cut a cohort of several routed requests moments ago (within
``COHORT_WINDOW`` delays) waits, on a timer, up to ``delay_ms`` for as many routed requests
as that cohort held, and cuts as soon as they are queued. A lone client's cohorts hold one
request, so it never waits. The target is also bounded by the requests that can come
(:class:`~loopml.serve.inference.cohorts.InFlight`: fewer being answered now than at the
recent peak): in a closed loop of N
clients nearly all N are inside the server, waiting for their answers or for the log, so a
batch waits at most for the few between an answer and their next request (waiting for the
previous cohort's size made a closed loop of 64 idle for a millisecond per batch: -36% in
req/s). Traffic that arrives on its own schedule gathers about a millisecond more of
arrivals per call. Two-minute soaks at 1,800 req/s (bench/soak, five interleaved pairs):
serving CPU 82-89% of the core without the wait (mean 86%), 78-87% with it (mean 82%), lower
in four pairs of five; client p50 3.0 -> 4.0 ms (mean of the minutes), p99 7.8-30 ms without
and 11-43 ms with. Closed loops (wrk c1, c2,
c16, c64; two servers each way) were within their run-to-run spread.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from loopml.serve.inference.cohorts import COHORT_WINDOW, Cohort, wake

log = logging.getLogger("loopml.serve")

# a batch is cut after this many loop turns in a row bring no new request: a request takes
# a few turns from its bytes arriving to its submit, so one quiet turn cut batches early
# (bench/serving/categorical.py c64: champion batches of 32 rows at 1 turn, 39-41 at 2-4)
QUIET_TURNS = 3
T = TypeVar("T")
R = TypeVar("R")
Executor = Literal["auto", "inline", "thread"]


class Lane(asyncio.Lock):
    """The lock of a batching lane (see :class:`MicroBatcher`), which also knows its
    impatient members: when one cuts a batch, the others' queued requests are predicted
    right after it, under the same hold. So the answers of a request cohort come back
    together, one log group and one ``fsync``, and return as one cohort, whichever version
    each was routed to (bench/serving/categorical.py c64: otherwise the canary's batches split
    the champion's into cohorts of ~35 requests, against ~60 in the case floor, which
    predicts champion and canary in one step)."""

    def __init__(self) -> None:
        super().__init__()
        self.members: weakref.WeakSet[MicroBatcher[Any, Any]] = weakref.WeakSet()
        self.cohort = Cohort()


class Sunk(NamedTuple):
    """A queued item nobody awaits (:meth:`MicroBatcher.put`): where its result goes."""

    tag: Any
    sink: Callable[[list[tuple[Any, Any, Any]]], None]


class MicroBatcher(Generic[T, R]):
    """Coalesce concurrent :meth:`submit` calls into calls of ``predict(items) -> results``.

    ``predict`` gets a list of items and returns one result per item, in order. If it
    raises, every waiter of that batch gets the exception.

    ``lane``: an :class:`asyncio.Lock` shared with other batchers (the versions of one
    model: an endpoint's champion, canary and shadows). A batch is cut only once the lane is
    free, so while one of them predicts the others' queues keep growing instead of each
    cutting small batches whose calls then compete for the core. With a :class:`Lane`, a
    batch cut by one impatient member cuts the others' queues too.

    ``patient=True`` always waits ``max_wait_ms`` (or until ``max_batch_size`` items) before
    predicting: for work nobody waits on, such as shadow scoring, where fewer and larger
    calls cost less CPU than answering soon.

    ``delay_ms``: the cohort wait (module docstring); 0 turns it off. Only requests given to
    :meth:`submit` (routed, someone awaits them) count toward a cohort, not :meth:`enqueue`'s.
    ``coming``: how many more routed requests may arrive soon
    (:meth:`~loopml.serve.inference.cohorts.InFlight.coming`); the wait never targets more
    than are queued plus those. None: no such bound.
    """

    def __init__(
        self,
        predict: Callable[[list[T]], Sequence[R]],
        *,
        max_batch_size: int = 64,
        max_wait_ms: float = 2.0,
        executor: Executor = "auto",
        inline_below_ms: float = 10.0,
        patient: bool = False,
        lane: asyncio.Lock | None = None,
        delay_ms: float = 0.0,
        coming: Callable[[], int] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if executor not in ("auto", "inline", "thread"):
            raise ValueError(f"executor must be 'auto', 'inline' or 'thread', got {executor!r}")
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.executor = executor
        self.inline_below_ms = inline_below_ms
        self.patient = patient
        self.lane = lane
        self.delay = delay_ms / 1000
        self.coming = coming
        if isinstance(lane, Lane) and not patient:
            lane.members.add(self)
        self._cohort = lane.cohort if isinstance(lane, Lane) else Cohort()
        self.batch_sizes: Counter[int] = Counter()
        self.predict_ms_ewma = 0.0
        self._queue: list[tuple[T, asyncio.Future[R] | Sunk, bool]] = []
        self._routed = 0  # queued items given to submit()
        self._draining = False
        self._pool: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def submit(self, item: T) -> R:
        """Predict ``item`` together with whatever else is submitted meanwhile."""
        fut = self._put(item, True)
        self._routed += 1
        cohort = self._cohort
        if cohort.waiter is not None and self._lane_routed() >= cohort.target:
            wake(cohort.waiter)
        return await fut

    def enqueue(self, item: T) -> asyncio.Future[R]:
        """:meth:`submit` without a coroutine: the future of ``item``'s result (for work
        nobody awaits, such as shadow scoring, where a task per request would cost more
        than the answer)."""
        return self._put(item, False)

    def put(self, item: T, tag: Any, sink: Callable[[list[tuple[Any, T, Any]]], None]) -> None:
        """Queue ``item`` with no future: once its batch is predicted, ``sink`` gets
        ``(tag, item, result)`` of every such item of that batch in one call (the result is
        the exception if the batch failed). So the batch's answers are handled as one: a
        shadow's whole batch becomes one log record, not a future, a callback and a record
        per request."""
        loop = asyncio.get_running_loop()
        self._queue.append((item, Sunk(tag, sink), False))
        self._start(loop)

    def _put(self, item: T, routed: bool) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, fut, routed))
        self._start(loop)
        return fut

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())  # keep a reference

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _inline(self) -> bool:
        if self.executor == "auto":
            return self.predict_ms_ewma < self.inline_below_ms
        return self.executor == "inline"

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self.lane is None:
                    await self._collect(loop)
                    self._cut(loop, await self._predict_batch(loop))
                    continue
                if self.patient:  # a patient batcher gathers without holding the lane
                    await self._collect(loop)
                async with self.lane:  # the queue keeps growing while another batch predicts
                    if not self._queue:  # another member cut this queue with its own
                        break
                    if not self.patient:  # and takes in what the last batch's answers brought
                        await self._collect(loop)
                    routed = await self._predict_batch(loop)
                    if not self.patient and isinstance(self.lane, Lane):
                        for other in list(self.lane.members):
                            if other is not self and other._queue:
                                routed += await other._predict_batch(loop)
                    if not self.patient:
                        self._cut(loop, routed)
        finally:
            self._draining = False

    def _cut(self, loop: asyncio.AbstractEventLoop, routed: int) -> None:
        """Remember the cohort just cut (``routed`` requests) for the next one's wait."""
        self._cohort.size, self._cohort.at = routed, loop.time()

    def _lane_routed(self) -> int:
        """Routed requests queued in this batcher's lane (in this batcher if it has none)."""
        if isinstance(self.lane, Lane):
            return sum(m._routed for m in self.lane.members)
        return self._routed

    async def _fill_cohort(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """The cohort wait (module docstring): until the lane holds as many routed requests
        as its last cohort, at most ``delay`` and never past ``deadline``."""
        cohort, now = self._cohort, loop.time()
        if cohort.size < 2 or now - cohort.at > COHORT_WINDOW * self.delay:
            return
        routed = self._lane_routed()
        target = min(cohort.size, self.max_batch_size)
        if self.coming is not None:  # a closed loop's clients are mostly waiting on us
            target = min(target, routed + self.coming())
        until = min(now + self.delay, deadline)
        if until <= now or routed >= target or cohort.waiter is not None:
            return
        waiter = cohort.waiter = loop.create_future()
        cohort.target = target
        timer = loop.call_at(until, wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            cohort.waiter = None

    async def _predict_batch(self, loop: asyncio.AbstractEventLoop) -> int:
        """Predict the first ``max_batch_size`` queued items and answer their waiters;
        returns how many of them were routed (given to :meth:`submit`)."""
        batch = self._queue[: self.max_batch_size]
        del self._queue[: self.max_batch_size]
        items = [item for item, _, _ in batch]
        routed = sum(1 for _, _, r in batch if r)
        self._routed -= routed
        cpu = [0.0]
        try:
            if self._inline():
                results = self._timed(items, cpu)
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="predict")
                results = await loop.run_in_executor(self._pool, self._timed, items, cpu)
            if len(results) != len(items):
                raise RuntimeError(
                    f"predict returned {len(results)} results for {len(items)} items"
                )
        except Exception as exc:  # every waiter of the batch gets it
            self._answer(batch, [exc] * len(batch), True)
            return routed
        finally:
            ms = cpu[0] * 1000
            self.predict_ms_ewma = (
                ms if not self.batch_sizes else (0.8 * self.predict_ms_ewma + 0.2 * ms)
            )
            self.batch_sizes[len(batch)] += 1
        self._answer(batch, results, False)
        return routed

    @staticmethod
    def _answer(
        batch: list[tuple[T, asyncio.Future[R] | Sunk, bool]], results: Sequence[Any], failed: bool
    ) -> None:
        """Resolve the batch's futures, then hand its sunk items to their sinks, one call
        per sink (a sink's failure is its own: logged, never the batch's)."""
        sunk: dict[Any, list[tuple[Any, T, Any]]] = {}
        for (item, fut, _), res in zip(batch, results, strict=True):
            if isinstance(fut, Sunk):
                sunk.setdefault(fut.sink, []).append((fut.tag, item, res))
            elif not fut.done():
                if failed:
                    fut.set_exception(res)
                else:
                    fut.set_result(res)
        for sink, entries in sunk.items():
            try:
                sink(entries)
            except Exception:
                log.exception("handling the answers of a batch failed")

    def _timed(self, items: list[T], cpu: list[float]) -> Sequence[R]:
        """``predict(items)``, adding the CPU time of the calling thread to ``cpu[0]``.

        CPU time, not wall time, decides inline versus thread: under load the wall time of
        a predict includes waiting for the GIL, which would push a fast model to the thread
        and add a thread hop to every batch exactly when the server is busiest."""
        t0 = time.thread_time()
        try:
            return self.predict(items)
        finally:
            cpu[0] += time.thread_time() - t0

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> None:
        """Yield to the loop while new requests keep arriving (bounded by size and time)."""
        deadline = loop.time() + self.max_wait_ms / 1000
        if self.patient:
            while len(self._queue) < self.max_batch_size and loop.time() < deadline:
                await asyncio.sleep(min(0.005, max(deadline - loop.time(), 0)))
            return
        size, quiet = len(self._queue), 0
        while size < self.max_batch_size and loop.time() < deadline:
            await asyncio.sleep(0)
            if len(self._queue) == size:
                quiet += 1
                if quiet >= QUIET_TURNS:
                    break
                continue
            size, quiet = len(self._queue), 0
        if self.delay and len(self._queue) < self.max_batch_size:
            await self._fill_cohort(loop, deadline)
