"""The durable prediction log and the label log (the writing side).

Every answered prediction (champion, canary or shadow) and every label goes through a
:class:`~loopml.serve.wal.SegmentLog` (checksummed frames, group commit; durable by default:
the caller's ``await`` returns only after its record is fsynced). Frames hold one request
each, as JSON (orjson serialises NumPy arrays in C, ~5 µs a record).

Closed segments become Parquet partitions for the monitor in :mod:`loopml.serve.compaction`;
:mod:`loopml.serve.logreader` reads both the Parquet and the segments not yet compacted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

from loopml.serve import wal
from loopml.serve.compaction import check_endpoint
from loopml.serve.logreader import lookup_request_ids
from loopml.serve.wire.protocols import dumps


class PredictionLog:
    """Appends predictions and labels under ``root``; see the module docstring."""

    def __init__(
        self,
        root: str | Path,
        *,
        durable: bool = True,
        segment_bytes: int = 64 << 20,
        segment_seconds: float = 600.0,
        recent_ids: int = 1_000_000,
    ) -> None:
        self.root = Path(root)
        self.recent_ids = recent_ids
        opts: dict[str, Any] = {
            "durable": durable,
            "segment_bytes": segment_bytes,
            "segment_seconds": segment_seconds,
        }
        self.predictions = wal.SegmentLog(self.root / "predlog" / "_wal", **opts)
        self.labels = wal.SegmentLog(self.root / "labels" / "_wal", **opts)
        # refusal counts (loopml.serve.http.refusals): appended without waiting for fsync
        self.refused = wal.SegmentLog(self.root / "refused" / "_wal", **opts)
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
            found.update(lookup_request_ids(self.root, missing))
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
