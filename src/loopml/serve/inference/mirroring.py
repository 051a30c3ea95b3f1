"""Off the response path: the prediction-log record of an answer, and the answers of the
versions that score a request without answering it (an endpoint's shadows; the champion's
``paired`` answer on canary-routed rows, which the rollout's paired judgement compares).

A shadow's answer is awaited by nobody: :meth:`Mirroring.mirror` queues the request in the
version's batcher (:meth:`~loopml.serve.inference.batching.MicroBatcher.enqueue`) and logs the
answer from the future's done-callback, so a mirrored request costs no task of its own.
Failures are counted (``loopml_shadow_errors_total``) and otherwise swallowed; beyond
``shadow_queue`` answers in flight, new ones are dropped and counted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import orjson

from loopml.logs.logtables import dumps
from loopml.logs.predlog import PredictionLog
from loopml.serve.http.prometheus import Metrics
from loopml.serve.inference.batching import MicroBatcher
from loopml.serve.inference.pool import Loaded, ModelFailure, ModelPool
from loopml.serve.inference.request_rows import Batch
from loopml.serve.settings import Settings
from loopml.serve.wire.context_columns import RowContext, split_context

log = logging.getLogger("loopml.serve")


class Queued(NamedTuple):
    """An off-path answer in a batcher's queue: whose, on which rows, when it was queued."""

    loaded: Loaded
    batch: Batch
    future: asyncio.Future[Any]
    t0: float


class Mirroring:
    """Encodes answers' log records and scores mirrored requests off the response path."""

    def __init__(
        self, pool: ModelPool, log: PredictionLog, metrics: Metrics, settings: Settings
    ) -> None:
        self.pool, self.log, self.metrics, self.settings = pool, log, metrics, settings
        self.pending: set[asyncio.Future[Any]] = set()  # mirrored answers not in yet

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the mirrored answers in flight (at shutdown)."""
        if self.pending:
            await asyncio.wait(set(self.pending), timeout=timeout)

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
        if batch.logged is None:
            features: Mapping[str, Any] = batch.columns
            if ctx is not None and ctx.columns:
                features = {**features, **ctx.columns}
            batch.logged = orjson.Fragment(dumps(features))
        return self.log.encode_predictions(
            endpoint=endpoint,
            version=version,
            role=role,
            request_ids=ids,
            features=batch.logged,
            predictions=result[0],
            probabilities=result[1],
            latency_ms=(time.perf_counter() - t0) * 1000,
            entity_key=entity_key,
            flags=batch.flags,
            event_times=ctx.times if ctx is not None else None,
            remember=remember,
        )

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
        role: str = "shadow",
    ) -> None:
        """Score ``versions`` on the routed request off the response path; their answers are
        logged under the caller's request ids with ``role`` (``shadow``, or ``paired`` for the
        champion's answer on canary rows)."""
        for vid in versions:
            queued = self.enqueue(vid, endpoint, routed, columns, batch, role)
            if queued is not None:
                self.log_when_done(queued, endpoint, role, ids, entity_key, ctx)

    def enqueue(
        self,
        vid: int,
        endpoint: str,
        routed: Loaded,
        columns: Mapping[str, Any],
        batch: Batch,
        role: str,
    ) -> Queued | None:
        """Queue version ``vid``'s answer on the routed request (``None``: dropped, not
        loaded, or failed); :meth:`log_when_done` logs it. Queued before the routed answer
        is in (the champion's ``paired`` rows), it joins the batch the routed rows' cohort
        joins, and an answer nobody logs in the end costs nothing more."""
        if len(self.pending) >= self.settings.shadow_queue:
            self.metrics.shadow_dropped.labels(endpoint).inc()
            return None
        loaded = self.pool.loaded.get(vid)
        if loaded is None:
            return None
        t0 = time.perf_counter()
        try:  # the same inputs as the routed version: its validated batch serves as is
            own = batch
            if loaded.inputs != routed.inputs:
                own = loaded.validator.validate(
                    split_context(columns, loaded.names, self.settings.context_columns)[0]
                )
            fut = self._batcher_for(loaded, role).enqueue(own)
        except Exception as exc:
            self._failed(endpoint, loaded, exc)
            return None
        return Queued(loaded, own, fut, t0)

    def log_when_done(
        self,
        queued: Queued,
        endpoint: str,
        role: str,
        ids: list[str],
        entity_key: str | None,
        ctx: RowContext | None,
    ) -> None:
        """Log ``queued``'s answer under ``ids`` once it is in (now, if it already is)."""
        self.pending.add(queued.future)
        queued.future.add_done_callback(
            functools.partial(
                self._done,
                endpoint,
                queued.loaded,
                role,
                ids,
                queued.batch,
                queued.t0,
                entity_key,
                ctx,
            )
        )

    def _done(
        self,
        endpoint: str,
        loaded: Loaded,
        role: str,
        ids: list[str],
        batch: Batch,
        t0: float,
        entity_key: str | None,
        ctx: RowContext | None,
        fut: asyncio.Future[Any],
    ) -> None:
        """Log a shadow (or paired) answer; any failure is counted and otherwise swallowed.
        Its record goes into the same durable log, but nobody waits for its fsync."""
        self.pending.discard(fut)
        if fut.cancelled():
            return
        try:
            result = fut.result()
            if isinstance(result, ModelFailure):
                raise result.error
            self.log.predictions.append_nowait(
                self.record(
                    endpoint, loaded.id, role, ids, batch, result, t0, entity_key, ctx, False
                )
            )
        except Exception as exc:
            self._failed(endpoint, loaded, exc)

    def _failed(self, endpoint: str, loaded: Loaded, exc: Exception) -> None:
        self.metrics.shadow_errors.labels(endpoint, str(loaded.id)).inc()
        log.debug("shadow version %s of %s failed: %s", loaded.id, endpoint, exc)

    @staticmethod
    def _batcher_for(loaded: Loaded, role: str) -> MicroBatcher[Batch, Any]:
        """Where an off-path prediction joins: the champion's paired rows join its routed
        batches (under load it predicts one about every request anyway, and a few more rows
        cost next to nothing: a pipeline's predict is about flat in the row count), while a
        shadow's gather in its patient batcher (a call of their own per window)."""
        if role == "paired":
            return loaded.batcher
        return loaded.shadow_batcher or loaded.batcher
