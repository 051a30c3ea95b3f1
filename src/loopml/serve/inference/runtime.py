"""The serving runtime: everything a request needs, built by ``create_app`` and started by
its lifespan (the store, the model pool, the traffic watcher, the prediction log, auth and
metrics), plus the one prediction path all three protocols share.

A prediction: route (champion or canary, sticky by entity key) -> parse with the routed
version's signature -> validate -> micro-batched predict -> request ids -> mirror to shadows
(:mod:`~loopml.serve.inference.mirroring`: queued, never awaited, never visible) -> append
to the durable log (the answer waits for its fsync) -> count. Shadows predict with their own batcher, validating with
their own signature unless it takes the same inputs as the routed version's (then the routed
batch is reused); their answers are logged with role ``shadow`` under the caller's request
ids, in the same log, without the caller waiting for them. A request routed to the canary is
also scored by the serving champion off the response path, logged with role ``paired``, so a
rollout judges challenger and champion on the same rows; those rows join the champion's own
batches rather than a call of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np

from loopml.data.signature import Signature
from loopml.errors import LoopmlError
from loopml.logs.compaction import compact, compact_in_worker, start_worker
from loopml.logs.predlog import PredictionLog
from loopml.serve.access.auth import Authenticator
from loopml.serve.http.prometheus import Metrics
from loopml.serve.http.refusals import Refusals, classify, request_rows
from loopml.serve.inference.cohorts import InFlight
from loopml.serve.inference.mirroring import Mirroring
from loopml.serve.inference.pinning import pinned
from loopml.serve.inference.pool import Loaded, ModelFailure, ModelPool, model_failed
from loopml.serve.inference.watcher import TrafficWatcher
from loopml.serve.settings import Settings
from loopml.serve.wire.context_columns import RowContext, check_context, event_times, split_context
from loopml.serve.wire.ids import new_request_ids
from loopml.serve.wire.label_check import check_labels
from loopml.serve.wire.protocols import Request

log = logging.getLogger("loopml.serve")

REFUSALS_EVERY = 5.0  # seconds between writes of the refusal counts to the log


@dataclass(slots=True)
class Answer:
    """One answered prediction request."""

    endpoint: str
    version: int
    role: str
    request_ids: list[str]
    predictions: np.ndarray
    probabilities: np.ndarray | None
    request: Request
    classes: tuple[Any, ...] | None = None  # the order of ``probabilities``' columns


def coarsen(proba: np.ndarray | None, mode: str) -> np.ndarray | None:
    """Output coarsening: ``top_class`` drops the scores, ``rounded`` keeps two decimals."""
    if proba is None or mode == "none":
        return proba
    if mode == "top_class":
        return None
    return np.round(proba, 2)


class Runtime:
    """Owns the serving state; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        from loopml.store import Store

        self.settings = settings
        self.store = Store(settings.store_url)
        # routed requests in predict(): each will append a record to the log
        self.in_flight = InFlight()
        self.pool = ModelPool(settings, self.store, self.in_flight)
        self.metrics = Metrics(self._scrape)
        self.watcher = TrafficWatcher(settings, self.store, self.pool, self.metrics)
        self.log = PredictionLog(
            settings.log,
            durable=settings.serve.durable_log,
            segment_seconds=settings.segment_seconds,
            commit_delay=settings.serve.log_commit_delay_ms / 1000,
            coming=lambda: self.in_flight.n,
        )
        self.auth = Authenticator(
            self.store.keys.authenticate,
            enabled=settings.auth,
            ttl=settings.key_cache_seconds,
            rate_per_s=settings.serve.rate_limit_per_s,
            burst=settings.serve.rate_burst,
            lookup_id=self.store.keys.by_id,
            session_secret=settings.serve.session_secret,
        )
        self.refusals = Refusals()
        self.off_path = Mirroring(self.pool, self.log, self.metrics, settings)
        self._tasks: list[asyncio.Task[None]] = []
        self._compactor: ProcessPoolExecutor | None = None
        self.started = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the log, load every endpoint's models, start the background tasks."""
        self.log.open()
        await self.watcher.sync(force=True)
        self.watcher.start()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._compact_forever()))
        self._tasks.append(loop.create_task(self._flush_refusals_forever()))
        # Everything loaded so far (libraries, models) lives as long as the server: keep it
        # out of the cyclic collector, whose full passes over it would stall requests.
        gc.collect()
        gc.freeze()
        self.started = True

    async def stop(self) -> None:
        """Stop polling, let shadows finish (briefly), flush and close the log, compact it."""
        await self.watcher.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.off_path.drain(timeout=2.0)
        self.flush_refusals()
        self.log.close()
        self.pool.close()
        if self._compactor is not None:
            await asyncio.to_thread(self._compactor.shutdown, True, cancel_futures=True)
            self._compactor = None
        with contextlib.suppress(Exception):
            await asyncio.to_thread(compact, self.settings.log, self.settings.label_wait)
        self.store.close()
        self.started = False

    async def _compact_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.compact_seconds)
            try:
                await self.compact()
            except Exception:
                log.exception("compacting the prediction log failed; will retry")

    async def _flush_refusals_forever(self) -> None:
        while True:
            await asyncio.sleep(REFUSALS_EVERY)
            try:
                self.flush_refusals()
            except Exception:
                log.exception("writing refusal counts to the log failed; will retry")

    def flush_refusals(self) -> None:
        """Write the refusal counts gathered since the last flush to the log."""
        self.log.log_refused(self.refusals.drain())

    def _refused(
        self,
        endpoint: str,
        version: int,
        role: str,
        exc: LoopmlError,
        loaded: Loaded | None,
        request: Request | None,
    ) -> None:
        """Count a request refused with a 4xx (loopml.serve.http.refusals)."""
        reason, column = classify(exc, loaded.names if loaded is not None else ())
        rows = request_rows(request.columns) if request is not None else None
        self.refusals.add(endpoint, version, role, reason, column, exc.http_status, rows)
        self.metrics.refused_requests.labels(endpoint, reason, column).inc()
        if rows:
            self.metrics.refused_rows.labels(endpoint, reason, column).inc(rows)

    async def compact(self) -> dict[str, int]:
        """Move closed log segments into Parquet, in a worker process.

        Compaction decodes every record in Python (~80 µs each: 8 s of CPU for 100k records);
        in a thread of this process it would hold the GIL in bursts that stall requests. One
        spawned worker, niced by ``serve.background_nice``, replaced if it dies.
        """
        if self._compactor is None:
            self._compactor = ProcessPoolExecutor(
                1,
                mp_context=mp.get_context("spawn"),
                initializer=start_worker,
                initargs=(
                    os.getpid(),
                    self.settings.serve.background_nice,
                    self.settings.serve.background_max_growth,
                ),
            )
        try:
            done = await asyncio.get_running_loop().run_in_executor(
                self._compactor, compact_in_worker, self.settings.log, self.settings.label_wait
            )
        except BrokenProcessPool:
            self._compactor.shutdown(wait=False, cancel_futures=True)
            self._compactor = None
            raise
        if done.pop("handover", 0):  # its memory grew: the next compaction starts a fresh one
            self._compactor.shutdown(wait=False)
            self._compactor = None
            log.info(
                "The log compactor's memory grew past serve.background_max_growth; "
                "the next compaction starts a fresh one."
            )
        return done

    def _scrape(self) -> dict[str, Any]:
        return {
            "batch_sizes": {v: dict(ld.batch_sizes) for v, ld in self.pool.loaded.items()},
            "logs": {"predictions": self.log.predictions, "labels": self.log.labels},
        }

    # -- predictions ----------------------------------------------------------------------------

    async def predict(
        self,
        endpoint: str,
        parse: Callable[[Signature], Request],
        entity_key: str | None = None,
        *,
        event_time: str | None = None,
        version: int | None = None,
    ) -> Answer:
        """Route (or use the pinned ``version``), validate, predict, mirror to shadows, log
        durably; see the module docstring. ``event_time``: the ``X-Event-Time`` header."""
        t0 = time.perf_counter()
        table = self.watcher.state(endpoint).table()
        role: str
        if version is None:
            vid, role = table.route(entity_key)
        else:
            vid, role = await pinned(self.store, self.pool, self.watcher, endpoint, table, version)
        loaded: Loaded | None = None
        request: Request | None = None
        self.in_flight.enter()
        try:
            loaded = self.pool.get(vid)
            request = parse(loaded.signature)
            s = self.settings
            features, ctx_cols = split_context(request.columns, loaded.names, s.context_columns)
            batch = loaded.validator.validate(features)
            ctx = None
            tcol = s.time_column
            tvalues = request.columns.get(tcol) if tcol else None
            if ctx_cols or tvalues is not None or event_time is not None:
                ctx = RowContext(
                    check_context(ctx_cols, batch.n),
                    event_times(tvalues, event_time, batch.n, tcol),
                )
            paired = None
            if role == "canary" and table.serving is not None:
                # the champion scores the canary's rows too, off the response path, so the
                # rollout judges both on the same rows (control.rollout: paired judgement);
                # queued now, they join the champion's batch of this request's cohort
                paired = self.off_path.enqueue(
                    table.serving, endpoint, loaded, request.columns, batch
                )
            result = await loaded.batcher.submit(batch)
            if isinstance(result, ModelFailure):
                raise model_failed(vid, endpoint, result.error)
            pred, proba = result
            ids = new_request_ids(batch.n)
            shadows = table.shadow_versions() if role != "pinned" else ()
            if shadows:
                self.off_path.mirror(
                    shadows, endpoint, loaded, request.columns, batch, ids, entity_key, ctx
                )
            if paired is not None:
                self.off_path.log_when_done(paired, endpoint, ids, entity_key, ctx)
            record = self.off_path.record(
                endpoint, vid, role, ids, batch, result, t0, entity_key, ctx
            )
            await self.log.predictions.append_future(record)
        except LoopmlError as exc:
            self.metrics.error(endpoint, vid, role, exc.http_status)
            if 400 <= exc.http_status < 500:
                self._refused(endpoint, vid, role, exc, loaded, request)
            raise
        finally:
            self.in_flight.leave()
        self.metrics.observe(endpoint, vid, role, batch.n, time.perf_counter() - t0)
        proba = coarsen(proba, self.settings.coarsen)
        classes = loaded.signature.classes if proba is not None else None
        return Answer(endpoint, vid, role, ids, pred, proba, request, classes)

    # -- labels ---------------------------------------------------------------------------------

    async def label(
        self, labels: Mapping[str, Any], allowed: Collection[str] | None = None
    ) -> tuple[list[str], list[str]]:
        """Log ground truth by request id (durably); returns the ids the log does not know
        and, with a remote log root, those kept until their prediction is compacted
        (``loopml.logs.pending``; ``allowed``: the endpoints the caller may label). Labels
        of known ids are checked against the endpoint's served models first (a 422 logs
        nothing)."""
        known = self.log.known_request_ids(labels)
        labels = check_labels(labels, known, self._signatures(set(known.values())))
        unknown = await self.log.log_labels(labels, known=known)
        held = await self.log.hold_labels(
            {r: labels[r] for r in unknown}, self.settings.label_wait, allowed
        )
        kept = set(held)
        return [r for r in unknown if r not in kept], held

    def _signatures(self, endpoints: set[str]) -> dict[str, list[Signature]]:
        out: dict[str, list[Signature]] = {}
        for name in endpoints:
            st = self.watcher.endpoints.get(name)
            if st is None or st.router is None:
                continue
            loaded = (self.pool.loaded.get(v) for v in st.router.table.versions())
            out[name] = [x.signature for x in loaded if x is not None]
        return out
