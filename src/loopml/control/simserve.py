"""Serving simulated in-process for a backtest: the server's routing, models and log writer,
on virtual time.

What the server does per request, done here per tick for the requests of that tick:

- route with :class:`loopml.serve.inference.routing.TrafficTable`, built from the store's endpoint row
  as the server's traffic watcher builds it (``table_from_row``), so canary stickiness by
  ``X-Entity-Key`` and the per-request shadow draw are the router's own;
- load each version through :class:`loopml.serve.inference.pool.ModelPool` (sha256 check, safe loader,
  warm-up, the fast predict path), validate each request with its validator, and predict the
  requests routed to one version in one call (the server's micro-batching, at full size);
- log every answer through :class:`loopml.logs.predlog.PredictionLog` with the request's
  virtual time: role ``champion`` or ``canary`` for the routed answer, ``shadow`` for each
  mirror, and ``paired`` for the serving champion's answer on canary-routed rows (same
  request ids), as the server logs it off the response path;
- log the true labels ``label_delay`` virtual seconds after their prediction.

Request ids are UUIDv7 built from the virtual time (the monitor finds a label's window by
the time in its request id), with seeded random bits, so a backtest is reproducible.
Latency is the measured predict time shared by rows. A request the validator refuses is
counted as rejected (the server answers 4xx) and logs nothing.
"""

from __future__ import annotations

import contextlib
import heapq
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.config import Config
from loopml.errors import DataError, LoopmlError, NotFoundError
from loopml.logs.compaction import compact
from loopml.logs.layout import log_location
from loopml.logs.predlog import PredictionLog
from loopml.serve.inference.pool import Loaded, ModelFailure, ModelPool
from loopml.serve.inference.request_rows import Batch
from loopml.serve.inference.watcher import table_from_row
from loopml.serve.settings import Settings
from loopml.store import Store


def virtual_request_ids(n: int, ms: int, rng: np.random.Generator) -> list[str]:
    """``n`` UUIDv7 strings (RFC 9562) for creation time ``ms`` (UNIX ms), seeded bits."""
    rand_a = rng.integers(0, 1 << 12, size=n)
    rand_b = rng.integers(0, 1 << 62, size=n, dtype=np.uint64)
    out = []
    for a, b in zip(rand_a.tolist(), rand_b.tolist(), strict=True):
        hi = (ms << 16) | 0x7000 | a
        lo = 0x8000_0000_0000_0000 | b
        h = f"{hi:016x}{lo:016x}"
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


ANSWERS = ("champion", "canary")  # the roles whose answer the caller gets


def _append_all(segments: Any, payloads: list[bytes]) -> None:
    """Append records and return once all of them are written (the last one waits for the
    writer, which writes in order), so the controller's reads see them."""
    for p in payloads[:-1]:
        segments.append_nowait(p)
    if payloads:
        segments.append_sync(payloads[-1])


@dataclass
class Served:
    """One logged answer: ``rows`` (positions in the history) answered by ``version``."""

    version: int
    role: str
    ts: float
    request: int
    rows: np.ndarray
    predictions: np.ndarray
    probabilities: np.ndarray | None


@dataclass
class TickStats:
    requests: int = 0
    rows: int = 0
    rejected: int = 0
    roles: dict[str, int] = field(default_factory=dict)


class SimServing:
    """The serving side of a backtest; see the module docstring."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        features: dict[str, np.ndarray],
        labels: np.ndarray,
        *,
        label_delay: float,
        seed: int = 0,
    ) -> None:
        assert cfg.deploy is not None  # checked by the caller
        self.cfg, self.store, self.endpoint = cfg, store, cfg.deploy.endpoint
        self.features, self.labels = features, labels
        self.label_delay = label_delay
        self.root = log_location(cfg)
        self.pool = ModelPool(Settings.from_config(cfg, auth=False), store)
        self.rng = np.random.default_rng(seed)
        self.pending: list[tuple[float, int, list[str], np.ndarray]] = []  # labels by due time
        self._seq = 0
        self.served: list[Served] = []
        self.rejected = 0
        self.refusals: Counter[str] = Counter()  # the 4xx messages, by how often

    # -- models ---------------------------------------------------------------------------

    def loaded(self, version: int) -> Loaded:
        got = self.pool.loaded.get(version)
        if got is None:
            got = self.pool.loaded[version] = self.pool.load_sync(version)
        return got

    def predict_rows(self, version: int, rows: np.ndarray) -> tuple[np.ndarray, Any]:
        """Offline: ``version``'s predictions (and probabilities) for rows of the history."""
        ld = self.loaded(version)
        batch = ld.validator.validate(self._columns(ld, rows))
        result = ld.batcher.predict([batch])[0]
        if isinstance(result, ModelFailure):
            raise result.error
        return result

    def _columns(self, ld: Loaded, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The request's values of the columns ``ld``'s signature takes (context columns such
        as the id or the time are not sent to the model)."""
        out = {}
        for c in ld.signature.columns:
            if c.name not in self.features:
                raise DataError(
                    f"The history has no column {c.name!r}, which version {ld.id} takes as "
                    "input. Replay a file with the columns the model was trained on.",
                    field=c.name,
                )
            out[c.name] = self.features[c.name][rows]
        return out

    def table(self) -> Any:
        row = self.store.endpoints.get(self.endpoint)
        ids = {row["champion_id"], row["canary_id"], row["previous_champion_id"]}
        ids |= {s["version_id"] for s in row["shadows"]}
        statuses: dict[int, str] = {}
        for vid in ids:
            if vid is None:
                continue
            with contextlib.suppress(NotFoundError):
                statuses[vid] = self.store.versions.get(vid)["status"]
        return table_from_row(row, statuses)

    # -- one tick -------------------------------------------------------------------------

    def serve(
        self, requests: list[tuple[int, float, np.ndarray, str | None]], log: PredictionLog
    ) -> TickStats:
        """Answer ``(request index, virtual time, rows, entity key)`` requests on the traffic
        table in force now, log every answer, and queue the labels."""
        stats = TickStats()
        if not requests:
            return stats
        table = self.table()
        # (request, role) per version: the routed answer, its mirrors, the paired answer
        jobs: dict[int, list[tuple[int, str]]] = {}
        for k, (_, _, _, key) in enumerate(requests):
            try:
                version, role = table.route(key)
            except LoopmlError as e:  # no version may answer: the server's 503
                self.refusals[e.message] += 1
                continue
            jobs.setdefault(version, []).append((k, role))
            if role == "canary":
                jobs.setdefault(table.serving, []).append((k, "paired"))
            for shadow in table.shadow_versions():
                jobs.setdefault(shadow, []).append((k, "shadow"))
        ids: list[list[str] | None] = [None] * len(requests)
        payloads: list[bytes] = []
        answered: set[int] = set()
        mirrors: list[tuple[int, int, str, Batch, Any, float]] = []
        for version in sorted(jobs):
            try:
                ld = self.loaded(version)
            except LoopmlError:
                continue  # a version that cannot load serves nothing (the server's 503)
            for (k, role), batch, result, ms in self._predict(ld, requests, jobs[version]):
                if batch is None or isinstance(result, ModelFailure):
                    continue  # a routed answer that fails is the caller's 4xx: nothing logged
                if role not in ANSWERS:  # mirrored only once the routed answer stands
                    mirrors.append((k, ld.id, role, batch, result, ms))
                    continue
                answered.add(k)
                payloads.append(
                    self._record(log, requests[k], ids, k, ld.id, role, batch, result, ms)
                )
                stats.roles[role] = stats.roles.get(role, 0) + 1
        for k, vid, role, batch, result, ms in mirrors:
            if k in answered:
                payloads.append(
                    self._record(log, requests[k], ids, k, vid, role, batch, result, ms)
                )
                stats.roles[role] = stats.roles.get(role, 0) + 1
        for k, (_, ts, rows, _) in enumerate(requests):
            if k not in answered:
                stats.rejected += 1
                continue
            stats.requests += 1
            stats.rows += len(rows)
            self._seq += 1
            got = ids[k]
            assert got is not None  # checked above
            heapq.heappush(self.pending, (ts + self.label_delay, self._seq, got, self.labels[rows]))
        _append_all(log.predictions, payloads)
        self.rejected += stats.rejected
        return stats

    def _predict(
        self,
        ld: Loaded,
        requests: list[tuple[int, float, np.ndarray, str | None]],
        todo: list[tuple[int, str]],
    ) -> list[tuple[tuple[int, str], Batch | None, Any, float]]:
        """Validate and predict the requests of ``todo`` with one version: one validation and
        one predict for all of them (validation and predictions are row-wise, as the server's
        micro-batches are); when the joint validation fails, each request alone."""
        if not todo:
            return []
        rows = [requests[k][2] for k, _ in todo]
        try:
            joint: Batch | None = ld.validator.validate(self._columns(ld, np.concatenate(rows)))
        except LoopmlError:
            joint = None
        t0 = time.perf_counter()
        if joint is not None:
            result = ld.batcher.predict([joint])[0]
            ms = (time.perf_counter() - t0) * 1000 / joint.n
            if not isinstance(result, ModelFailure):
                cols, flags = joint.columns, joint.flags
                pred, proba = result
                out: list[tuple[tuple[int, str], Batch | None, Any, float]] = []
                a = 0
                for job, r in zip(todo, rows, strict=True):
                    b = a + len(r)
                    part = Batch(
                        {c: v[a:b] for c, v in cols.items()},
                        b - a,
                        None if flags is None else flags[a:b],
                    )
                    out.append((job, part, (pred[a:b], None if proba is None else proba[a:b]), ms))
                    a = b
                return out
        batches: list[Batch | None] = []
        for r in rows:
            try:
                batches.append(ld.validator.validate(self._columns(ld, r)))
            except LoopmlError as e:
                self.refusals[e.message] += 1
                batches.append(None)
        good = [b for b in batches if b is not None]
        results = iter(ld.batcher.predict(good) if good else [])
        ms = (time.perf_counter() - t0) * 1000 / max(1, sum(b.n for b in good))
        return [
            (job, b, next(results) if b is not None else None, ms)
            for job, b in zip(todo, batches, strict=True)
        ]

    def _record(
        self,
        log: PredictionLog,
        request: tuple[int, float, np.ndarray, str | None],
        ids: list[list[str] | None],
        k: int,
        version: int,
        role: str,
        batch: Batch,
        result: tuple[np.ndarray, np.ndarray | None],
        per_row_ms: float,
    ) -> bytes:
        index, ts, rows, key = request
        ts_us = int(ts * 1_000_000)  # the log's resolution: Served keeps the logged time
        if ids[k] is None:
            ids[k] = virtual_request_ids(len(rows), int(ts * 1000), self.rng)
        pred, proba = result
        self.served.append(Served(version, role, ts_us / 1e6, index, rows, pred, proba))
        return log.encode_predictions(
            endpoint=self.endpoint,
            version=version,
            role=role,
            request_ids=ids[k],  # type: ignore[arg-type]
            features=batch.columns,
            predictions=pred,
            probabilities=proba,
            latency_ms=per_row_ms * len(rows) + 0.5,
            entity_key=key,
            flags=batch.flags,
            ts_us=ts_us,
        )

    def deliver_labels(self, now: float, log: PredictionLog) -> int:
        """Log every label due by ``now`` (at its due time); returns how many."""
        n = 0
        payloads = []
        while self.pending and self.pending[0][0] <= now:
            due, _, ids, y = heapq.heappop(self.pending)
            payloads.append(
                log.encode_labels(self.endpoint, ids, y.tolist(), ts_us=int(due * 1_000_000))
            )
            n += len(ids)
        _append_all(log.labels, payloads)
        return n

    def flush(self) -> None:
        """Turn what was logged into Parquet, as the server's compaction does."""
        compact(self.root)

    def open_log(self) -> PredictionLog:
        return PredictionLog(self.root, durable=False).open()

    def close(self) -> None:
        self.pool.close()
