"""Off the response path: the prediction-log record of an answer, and the answers of the
versions that score a request without answering it (an endpoint's shadows; the champion's
``paired`` answer on canary-routed rows, which the rollout's paired judgement compares).

A shadow's answer is awaited by nobody: :meth:`Mirroring.mirror` puts the request in the
version's patient batcher with no future (:meth:`~loopml.serve.inference.batching.
MicroBatcher.put`), and the batch's answers come back in one call that logs them as one
record (:meth:`~loopml.logs.predlog.PredictionLog.encode_group`). At c64 on the categorical
bench a shadow's call held ~250 requests (its cap is 256), which one record per request paid
for with a future, a done-callback, an encode, a frame and an append each: the server's CPU
per request fell from 0.388 to 0.367 ms (medians of six interleaved pairs). A ``paired`` answer joins the
champion's routed batch before the canary's request ids exist, so it keeps a future whose
callback logs it. Failures are counted (``loopml_shadow_errors_total``) and otherwise
swallowed; beyond ``shadow_queue`` answers in flight, new ones are dropped and counted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np
import orjson

from loopml.logs.logtables import dumps
from loopml.logs.predlog import PredictionLog
from loopml.serve.http.prometheus import Metrics
from loopml.serve.inference.pool import Loaded, ModelFailure, ModelPool
from loopml.serve.inference.request_rows import Batch
from loopml.serve.settings import Settings
from loopml.serve.wire.context_columns import RowContext, split_context

log = logging.getLogger("loopml.serve")


class Queued(NamedTuple):
    """A paired answer in the champion's queue: whose, on which rows, when it was queued."""

    loaded: Loaded
    batch: Batch
    future: asyncio.Future[Any]
    t0: float


class Shadowed(NamedTuple):
    """A request in a shadow's batcher (the tag of :meth:`MicroBatcher.put`)."""

    loaded: Loaded
    endpoint: str
    ids: list[str]
    entity_key: str | None
    ctx: RowContext | None
    t0: float


class Mirroring:
    """Encodes answers' log records and scores mirrored requests off the response path."""

    def __init__(
        self, pool: ModelPool, log: PredictionLog, metrics: Metrics, settings: Settings
    ) -> None:
        self.pool, self.log, self.metrics, self.settings = pool, log, metrics, settings
        self.pending: set[asyncio.Future[Any]] = set()  # paired answers not in yet
        self.shadows = 0  # requests in shadows' batchers, not answered yet

    @property
    def in_flight(self) -> int:
        """Off-path answers queued and not logged yet (``shadow_queue`` bounds them)."""
        return self.shadows + len(self.pending)

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the mirrored answers in flight (at shutdown)."""
        deadline = time.monotonic() + timeout
        if self.pending:
            await asyncio.wait(set(self.pending), timeout=timeout)
        while self.shadows > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def record(
        self,
        endpoint: str,
        version: int,
        role: str,
        ids: list[str],
        batch: Batch,
        result: tuple[np.ndarray, np.ndarray | None],
        t0: float,
        entity_key: str | None,
        ctx: RowContext | None = None,
        remember: bool = True,
    ) -> bytes:
        """One answered request's prediction-log record (context columns beside the inputs;
        ``remember``: see :meth:`~loopml.logs.predlog.PredictionLog.encode_predictions`).
        The inputs are encoded once per batch, for every record that logs them."""
        return self.log.encode_predictions(
            endpoint=endpoint,
            version=version,
            role=role,
            request_ids=ids,
            features=_logged(batch, ctx),
            predictions=result[0],
            probabilities=result[1],
            latency_ms=(time.perf_counter() - t0) * 1000,
            entity_key=entity_key,
            flags=batch.flags,
            event_times=ctx.times if ctx is not None else None,
            remember=remember,
        )

    # -- shadows --------------------------------------------------------------------------

    def mirror(
        self,
        versions: tuple[int, ...],
        endpoint: str,
        routed: Loaded,
        columns: Mapping[str, Any],
        batch: Batch,
        ids: list[str],
        entity_key: str | None,
        ctx: RowContext | None,
    ) -> None:
        """Score the shadow ``versions`` on the routed request off the response path; their
        answers are logged under the caller's request ids with role ``shadow``, one record
        per shadow batch (module docstring)."""
        for vid in versions:
            if self.in_flight >= self.settings.shadow_queue:
                self.metrics.shadow_dropped.labels(endpoint).inc()
                continue
            loaded = self.pool.loaded.get(vid)
            if loaded is None:
                continue
            tag = Shadowed(loaded, endpoint, ids, entity_key, ctx, time.perf_counter())
            try:
                own = self._inputs(loaded, routed, columns, batch)
                (loaded.shadow_batcher or loaded.batcher).put(own, tag, self._shadow_batch)
            except Exception as exc:
                self._failed(endpoint, loaded, exc)
                continue
            self.shadows += 1

    def _shadow_batch(self, entries: list[tuple[Shadowed, Batch, Any]]) -> None:
        """Log a shadow batch's answers (its batcher's sink): one record per endpoint, of the
        requests it answered; a failed request is counted, not logged."""
        self.shadows -= len(entries)
        by_endpoint: dict[str, list[tuple[Shadowed, Batch, Any]]] = {}
        for tag, batch, result in entries:
            if isinstance(result, ModelFailure):
                result = result.error
            if isinstance(result, BaseException):
                self._failed(tag.endpoint, tag.loaded, result)
                continue
            by_endpoint.setdefault(tag.endpoint, []).append((tag, batch, result))
        for endpoint, group in by_endpoint.items():
            try:
                self.log.predictions.append_nowait(self._group_record(endpoint, group))
            except Exception as exc:
                self._failed(endpoint, group[0][0].loaded, exc)

    def _group_record(self, endpoint: str, group: list[tuple[Shadowed, Batch, Any]]) -> bytes:
        now = time.perf_counter()
        counts = [b.n for _, b, _ in group]
        proba = [r[1] for _, _, r in group]
        flags = [b.flags for _, b, _ in group]
        times = [t.ctx.times if t.ctx is not None else None for t, _, _ in group]
        return self.log.encode_group(
            endpoint=endpoint,
            version=group[0][0].loaded.id,
            role="shadow",
            request_ids=[i for t, _, _ in group for i in t.ids],
            counts=counts,
            features=[_logged(b, t.ctx) for t, b, _ in group],
            predictions=np.concatenate([r[0] for _, _, r in group]),
            probabilities=None if proba[0] is None else np.concatenate(proba),
            latency_ms=[(now - t.t0) * 1000 for t, _, _ in group],
            entity_keys=[t.entity_key for t, _, _ in group],
            flags=_rows(flags, counts),
            event_times=_rows(times, counts),
        )

    def _inputs(
        self, loaded: Loaded, routed: Loaded, columns: Mapping[str, Any], batch: Batch
    ) -> Batch:
        """``loaded``'s validated rows of the request: the routed version's batch as is when
        both take the same inputs."""
        if loaded.inputs == routed.inputs:
            return batch
        return loaded.validator.validate(
            split_context(columns, loaded.names, self.settings.context_columns)[0]
        )

    # -- paired answers ---------------------------------------------------------------------

    def enqueue(
        self,
        vid: int,
        endpoint: str,
        routed: Loaded,
        columns: Mapping[str, Any],
        batch: Batch,
    ) -> Queued | None:
        """Queue version ``vid``'s (the champion's) ``paired`` answer on the routed request
        (``None``: dropped, not loaded, or failed); :meth:`log_when_done` logs it. Queued
        before the routed answer is in, it joins the batch the routed rows' cohort joins (a
        pipeline's predict is about flat in the row count), and an answer nobody logs in the
        end costs nothing more."""
        if self.in_flight >= self.settings.shadow_queue:
            self.metrics.shadow_dropped.labels(endpoint).inc()
            return None
        loaded = self.pool.loaded.get(vid)
        if loaded is None:
            return None
        t0 = time.perf_counter()
        try:
            own = self._inputs(loaded, routed, columns, batch)
            fut = loaded.batcher.enqueue(own)
        except Exception as exc:
            self._failed(endpoint, loaded, exc)
            return None
        return Queued(loaded, own, fut, t0)

    def log_when_done(
        self,
        queued: Queued,
        endpoint: str,
        ids: list[str],
        entity_key: str | None,
        ctx: RowContext | None,
    ) -> None:
        """Log ``queued``'s answer under ``ids`` once it is in (now, if it already is)."""
        self.pending.add(queued.future)
        queued.future.add_done_callback(
            functools.partial(self._done, endpoint, queued, ids, entity_key, ctx)
        )

    def _done(
        self,
        endpoint: str,
        queued: Queued,
        ids: list[str],
        entity_key: str | None,
        ctx: RowContext | None,
        fut: asyncio.Future[Any],
    ) -> None:
        """Log a paired answer; any failure is counted and otherwise swallowed. Its record
        goes into the same durable log, but nobody waits for its fsync."""
        self.pending.discard(fut)
        if fut.cancelled():
            return
        loaded = queued.loaded
        try:
            result = fut.result()
            if isinstance(result, ModelFailure):
                raise result.error
            record = self.record(
                endpoint,
                loaded.id,
                "paired",
                ids,
                queued.batch,
                result,
                queued.t0,
                entity_key,
                ctx,
                False,
            )
            self.log.predictions.append_nowait(record)
        except Exception as exc:
            self._failed(endpoint, loaded, exc)

    def _failed(self, endpoint: str, loaded: Loaded, exc: BaseException) -> None:
        self.metrics.shadow_errors.labels(endpoint, str(loaded.id)).inc()
        log.debug("shadow version %s of %s failed: %s", loaded.id, endpoint, exc)


def _logged(batch: Batch, ctx: RowContext | None) -> orjson.Fragment:
    """The request's inputs (and context columns) as logged, encoded once per batch for
    every record that logs them."""
    if batch.logged is None:
        features: Mapping[str, Any] = batch.columns
        if ctx is not None and ctx.columns:
            features = {**features, **ctx.columns}
        batch.logged = orjson.Fragment(dumps(features))
    return batch.logged


def _rows(per_request: list[Any], counts: list[int]) -> list[Any] | None:
    """Per-row values of several requests (``None`` for a request without them), or
    ``None`` when no request has any."""
    if all(v is None for v in per_request):
        return None
    out: list[Any] = []
    for values, n in zip(per_request, counts, strict=True):
        out.extend(repeat(None, n) if values is None else values)
    return out
