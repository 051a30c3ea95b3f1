"""The durable prediction log and the label log (the writing side).

Every answered prediction (champion, canary or shadow) and every label goes through a
:class:`~loopml.logs.wal.SegmentLog` (checksummed frames, group commit; durable by default:
the caller's ``await`` returns only after its record is fsynced). A frame holds one request
as JSON (orjson serialises NumPy arrays in C, ~5 µs a record), or a shadow's batch of them
(:meth:`PredictionLog.encode_group`), which readers split back into the same rows.

The segments live in the spool of a :class:`~loopml.logs.layout.LogLocation` (local disk);
closed ones become Parquet parts under its root in :mod:`loopml.logs.compaction`;
:mod:`loopml.logs.logreader` reads both the parts and the segments not yet compacted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from loopml.logs import wal
from loopml.logs.layout import LABELS, PREDICTIONS, REFUSED, LogLocation, as_location, wal_dir
from loopml.logs.layout import check_endpoint as check_endpoint
from loopml.logs.logreader import lookup_request_ids
from loopml.logs.logtables import dumps
from loopml.logs.pending import holdable, pending_dir, pending_record
from loopml.logs.recent_ids import RecentIds


class PredictionLog:
    """Appends predictions and labels to the spool of ``where``; see the module docstring."""

    def __init__(
        self,
        where: LogLocation | str | Path,
        *,
        durable: bool = True,
        segment_bytes: int = 64 << 20,
        segment_seconds: float = 600.0,
        recent_ids: int = 1_000_000,
        commit_delay: float = 0.0,
        coming: Callable[[], int] | None = None,
    ) -> None:
        self.where = as_location(where)
        if self.where.spool is None:
            raise ValueError("a prediction log needs a local spool folder to write to")
        spool = self.where.spool
        self.recent_ids = recent_ids
        opts: dict[str, Any] = {
            "durable": durable,
            "segment_bytes": segment_bytes,
            "segment_seconds": segment_seconds,
        }
        # predictions only: requests wait on their fsync in cohorts (wal.SegmentLog.commit_delay)
        self.predictions = wal.SegmentLog(
            wal_dir(spool, PREDICTIONS), commit_delay=commit_delay, coming=coming, **opts
        )
        self.labels = wal.SegmentLog(wal_dir(spool, LABELS), **opts)
        # refusal counts (loopml.serve.http.refusals): appended without waiting for fsync
        self.refused = wal.SegmentLog(wal_dir(spool, REFUSED), **opts)
        # labels waiting for their prediction to reach the root (loopml.logs.pending): only
        # with a remote root, where other replicas' segments are out of sight
        self.pending = wal.SegmentLog(pending_dir(spool), **opts) if self.where.remote else None
        self._recent = RecentIds(recent_ids)

    def open(self) -> PredictionLog:
        """Start both logs (segments left by an earlier process wait for compaction)."""
        for segment_log in self._logs():
            segment_log.open()
        return self

    def close(self) -> None:
        for segment_log in self._logs():
            segment_log.close()

    def _logs(self) -> list[wal.SegmentLog]:
        held = [] if self.pending is None else [self.pending]
        return [self.predictions, self.labels, self.refused, *held]

    def __enter__(self) -> PredictionLog:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- predictions ----------------------------------------------------------------------

    def encode_predictions(
        self,
        *,
        endpoint: str,
        version: int,
        role: str,
        request_ids: Sequence[str],
        features: Mapping[str, Any] | orjson.Fragment,
        predictions: Any,
        probabilities: Any = None,
        latency_ms: float = 0.0,
        entity_key: str | None = None,
        flags: Any = None,
        ts_us: int | None = None,
        event_times: Sequence[int | None] | None = None,
        remember: bool = True,
    ) -> bytes:
        """One request's record as a frame payload (also remembers its request ids, unless
        ``remember`` is false: a shadow's or paired record repeats its request's ids).
        ``event_times``: per row, UTC microseconds (``None``: the request time)."""
        payload = _record(
            endpoint,
            version,
            role,
            request_ids,
            ts_us,
            entity_key,
            latency_ms,
            features,
            predictions,
            probabilities,
            flags,
            event_times,
        )
        if remember:  # once the endpoint's name is checked
            self._recent.insert(request_ids, endpoint)
        return payload

    def encode_group(
        self,
        *,
        endpoint: str,
        version: int,
        role: str,
        request_ids: Sequence[str],
        counts: Sequence[int],
        features: Sequence[Mapping[str, Any] | orjson.Fragment],
        predictions: Any,
        probabilities: Any,
        latency_ms: Sequence[float],
        entity_keys: Sequence[str | None],
        flags: Sequence[Any] | None,
        event_times: Sequence[int | None] | None,
    ) -> bytes:
        """Several requests' answers from one model call as one record (a shadow's batch):
        ``counts`` holds each request's rows, ``request_ids``, ``predictions``,
        ``probabilities``, ``flags`` and ``event_times`` every row in order, and
        ``features``, ``latency_ms`` and ``entity_keys`` one entry per request. Readers
        (:func:`~loopml.logs.logtables.prediction_table`) give its rows the same columns as
        one record per request, each request's ``_call`` its own. Its ids are not
        remembered (a shadow's repeat its request's)."""
        return _record(
            endpoint,
            version,
            role,
            request_ids,
            None,
            entity_keys,
            latency_ms,
            features,
            predictions,
            probabilities,
            flags,
            event_times,
            counts,
        )

    async def log_predictions(self, **record: Any) -> None:
        """Append one request's predictions; returns once durable. See :meth:`encode_predictions`."""
        await self.predictions.append_future(self.encode_predictions(**record))

    def log_predictions_sync(self, **record: Any) -> None:
        self.predictions.append_sync(self.encode_predictions(**record))

    def log_refused(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append refusal counts (not waiting for their fsync)."""
        for rec in records:
            check_endpoint(rec["e"])
            self.refused.append_nowait(dumps(rec))

    # -- labels ---------------------------------------------------------------------------

    def known_request_ids(self, request_ids: Iterable[str]) -> dict[str, str]:
        """Which of ``request_ids`` the log holds, mapped to their endpoint.

        The last ``recent_ids`` ids logged come from memory (:mod:`loopml.logs.recent_ids`);
        the rest are looked up in the segments and in the Parquet hours around the time
        encoded in the (UUIDv7) id.
        """
        ids = list(request_ids)
        found = self._recent.lookup(ids)
        missing = {rid for rid in ids if rid not in found}
        if missing:
            found.update(lookup_request_ids(self.where, missing))
        return found

    def encode_labels(
        self,
        endpoint: str,
        request_ids: Sequence[str],
        labels: Sequence[Any],
        ts_us: int | None = None,
    ) -> bytes:
        return dumps(
            {
                "e": endpoint,
                "r": request_ids,
                "y": labels,
                "t": time.time_ns() // 1000 if ts_us is None else ts_us,
            }
        )

    async def log_labels(
        self,
        labels: Mapping[str, Any],
        ts_us: int | None = None,
        known: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Append ``request_id -> label``; returns the ids the log does not know (not logged).
        ``known``: :meth:`known_request_ids` of ``labels`` when the caller has it already."""
        if known is None:
            known = self.known_request_ids(labels)
        by_endpoint: dict[str, list[str]] = {}
        for rid, ep in known.items():
            by_endpoint.setdefault(ep, []).append(rid)
        futures = [
            self.labels.append_future(self.encode_labels(ep, ids, [labels[r] for r in ids], ts_us))
            for ep, ids in by_endpoint.items()
        ]
        if futures:
            await asyncio.gather(*futures)
        return [rid for rid in labels if rid not in known]

    async def hold_labels(
        self,
        labels: Mapping[str, Any],
        wait: float,
        allowed: Collection[str] | None = None,
        ts_us: int | None = None,
    ) -> list[str]:
        """Keep labels of request ids not found yet, to be looked up again at compaction
        (:mod:`loopml.logs.pending`); returns the ids kept. Nothing is kept with a local root
        (every segment is in sight there) nor for ids older than ``wait`` or not UUIDv7.
        ``allowed``: the endpoints the caller may label (None: all)."""
        if self.pending is None:
            return []
        held = holdable(list(labels), wait)
        if held:
            record = pending_record({r: labels[r] for r in held}, allowed, ts_us)
            await self.pending.append_future(dumps(record))
        return held


def _record(
    endpoint: str,
    version: int,
    role: str,
    request_ids: Sequence[str],
    ts_us: int | None,
    entity_key: Any,
    latency_ms: Any,
    features: Any,
    predictions: Any,
    probabilities: Any,
    flags: Any,
    event_times: Any,
    counts: Sequence[int] | None = None,
) -> bytes:
    """A prediction record's frame payload: one request's, or several's (``counts``; then
    ``entity_key``, ``latency_ms`` and ``features`` hold one entry per request)."""
    check_endpoint(endpoint)
    record = {
        "e": endpoint,
        "v": version,
        "o": role,
        "r": request_ids,
        "t": time.time_ns() // 1000 if ts_us is None else ts_us,
        "k": entity_key,
        "l": latency_ms,
        "f": features,
        "p": predictions,
        "q": probabilities,
        "g": flags,
        "w": event_times,
    }
    if counts is not None:
        record["n"] = counts
    return dumps(record)
