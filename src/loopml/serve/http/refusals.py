"""Refused traffic: requests answered 4xx, counted by endpoint, reason and column.

An upstream change that makes every request fail validation is a data-quality incident, not
only client errors. Each refusal on the prediction path is classified (:func:`classify`),
counted in ``/metrics`` (``loopml_refused_requests_total`` and ``loopml_refused_rows_total``
by endpoint, reason and column) and aggregated in memory; the server writes the counts to
the log every few seconds as ``refused`` records, compacted like predictions into::

    {root}/refused/endpoint=<e>/hour=<YYYYMMDDHH>/part-<segment>.parquet

with columns ``_ts`` (first refusal of the aggregate), ``_endpoint``, ``_version``,
``_role``, ``_reason``, ``_column``, ``_status``, ``_requests`` and ``_rows`` (rows of the
refused requests whose rows could be counted), for the monitor's windows and alerts.

A column label is a column of the model's signature or ``-``: never a name a client made
up, so neither the metrics nor the log grow with what an attacker sends.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any, TypeVar

from loopml.errors import DataError, LoopmlError, ValidationError

REASONS = (
    "malformed",  # the body could not be read as the protocol's JSON (or binary tensors)
    "media_type",
    "too_large",
    "missing_column",
    "unknown_column",
    "length",  # columns of different lengths, or no rows
    "type",
    "null",
    "unseen_category",
    "context",  # a context column or event time that is not one scalar (time) per row
    "model_error",  # the model raised on the rows
    "invalid",  # any other 4xx
)

E = TypeVar("E", bound=LoopmlError)


def tag(exc: E, reason: str) -> E:
    """Mark ``exc`` with the refusal reason it stands for (see :data:`REASONS`)."""
    assert reason in REASONS, reason
    exc.refusal = reason  # type: ignore[attr-defined]
    return exc


def classify(exc: LoopmlError, columns: Collection[str]) -> tuple[str, str]:
    """``(reason, column)`` of a refused request; ``column`` is ``-`` unless the error names
    a column of the signature."""
    reason = getattr(exc, "refusal", None)
    if reason is None:
        # untagged: a DataError that is not about rows is about the request's shape
        shape = isinstance(exc, DataError) and not isinstance(exc, ValidationError)
        reason = {400: "malformed", 413: "too_large", 415: "media_type"}.get(
            exc.http_status, "malformed" if shape else "invalid"
        )
    column = exc.field if exc.field in columns else "-"
    return reason, column  # type: ignore[return-value]


class Refusals:
    """Refusal counts since the last :meth:`drain`, by (endpoint, version, role, reason,
    column, status)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[Any, ...], list[Any]] = {}

    def add(
        self,
        endpoint: str,
        version: int | None,
        role: str | None,
        reason: str,
        column: str,
        status: int,
        rows: int | None,
    ) -> None:
        key = (endpoint, version, role, reason, column, status)
        entry = self._counts.get(key)
        if entry is None:
            entry = self._counts[key] = [time.time_ns() // 1000, 0, 0]
        entry[1] += 1
        entry[2] += rows or 0

    def drain(self) -> list[dict[str, Any]]:
        """The counts as log records (and forget them)."""
        counts, self._counts = self._counts, {}
        return [
            {
                "e": e,
                "v": v,
                "o": o,
                "reason": reason,
                "c": c,
                "s": s,
                "t": t,
                "n": n,
                "rows": rows,
            }
            for (e, v, o, reason, c, s), (t, n, rows) in counts.items()
        ]


def request_rows(columns: Any) -> int | None:
    """How many rows a parsed request holds (its first column's length), if it can say."""
    if not isinstance(columns, dict) or not columns:
        return None
    first = next(iter(columns.values()))
    try:
        return len(first)
    except TypeError:
        return None
