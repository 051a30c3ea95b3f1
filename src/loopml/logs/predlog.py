"""The durable prediction log and the label log (the writing side).

Every answered prediction (champion, canary or shadow) and every label goes through a
:class:`~loopml.logs.wal.SegmentLog` (checksummed frames, group commit; durable by default:
the caller's ``await`` returns only after its record is fsynced). Frames hold one request
each, as JSON (orjson serialises NumPy arrays in C, ~5 µs a record).

The segments live in the spool of a :class:`~loopml.logs.layout.LogLocation` (local disk);
closed ones become Parquet parts under its root in :mod:`loopml.logs.compaction`;
:mod:`loopml.logs.logreader` reads both the parts and the segments not yet compacted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from loopml.logs import wal
from loopml.logs.layout import LABELS, PREDICTIONS, REFUSED, LogLocation, as_location, wal_dir
from loopml.logs.layout import check_endpoint as check_endpoint
from loopml.logs.logreader import lookup_request_ids


def dumps(obj: Any) -> bytes:
    """Serialise to JSON bytes (NumPy arrays and scalars included)."""
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY, default=_default)


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | np.generic):
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


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
        self.predictions = wal.SegmentLog(wal_dir(spool, PREDICTIONS), **opts)
        self.labels = wal.SegmentLog(wal_dir(spool, LABELS), **opts)
        # refusal counts (loopml.serve.http.refusals): appended without waiting for fsync
        self.refused = wal.SegmentLog(wal_dir(spool, REFUSED), **opts)
        self._recent: dict[str, str] = {}

    def open(self) -> PredictionLog:
        """Start both logs (segments left by an earlier process wait for compaction)."""
        self.predictions.open()
        self.labels.open()
        self.refused.open()
        return self

    def close(self) -> None:
        self.predictions.close()
        self.labels.close()
        self.refused.close()

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
        features: Mapping[str, Any],
        predictions: Any,
        probabilities: Any = None,
        latency_ms: float = 0.0,
        entity_key: str | None = None,
        flags: Any = None,
        ts_us: int | None = None,
        event_times: Sequence[int | None] | None = None,
    ) -> bytes:
        """One request's record as a frame payload (also remembers its request ids).
        ``event_times``: per row, UTC microseconds (``None``: the request time)."""
        check_endpoint(endpoint)
        if not self._recent or len(self._recent) >= self.recent_ids:
            self._evict()
        self._recent.update(zip(request_ids, repeat(endpoint)))
        return dumps(
            {
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
        )

    async def log_predictions(self, **record: Any) -> None:
        """Append one request's predictions; returns once durable. See :meth:`encode_predictions`."""
        await self.predictions.append_future(self.encode_predictions(**record))

    def log_predictions_sync(self, **record: Any) -> None:
        self.predictions.append_sync(self.encode_predictions(**record))

    def _evict(self) -> None:
        if len(self._recent) >= self.recent_ids:
            drop = max(1, self.recent_ids // 10)
            for key in list(self._recent)[:drop]:
                del self._recent[key]

    def log_refused(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append refusal counts (not waiting for their fsync)."""
        for rec in records:
            check_endpoint(rec["e"])
            self.refused.append_nowait(dumps(rec))

    # -- labels ---------------------------------------------------------------------------

    def known_request_ids(self, request_ids: Iterable[str]) -> dict[str, str]:
        """Which of ``request_ids`` the log holds, mapped to their endpoint.

        Recent ids come from memory; the rest are looked up in the segments and in the
        Parquet hours around the time encoded in the (UUIDv7) id.
        """
        found: dict[str, str] = {}
        missing: set[str] = set()
        for rid in request_ids:
            ep = self._recent.get(rid)
            if ep is None:
                missing.add(rid)
            else:
                found[rid] = ep
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
