"""Context columns and event time: what a request carries beside the model's inputs.

Clients send whole records. The project's declared ``data.id``, ``data.time``,
``data.sensitive`` and ``data.segments`` columns are accepted even when the model does not
use them: checked here (one scalar per row), logged beside the prediction under their own
names, and never passed to the model, so a model trained without the sensitive attributes
can still have its fairness monitored. Other unknown columns follow ``deploy.extra_columns``
(``reject`` or ``drop``, in :class:`~loopml.serve.wire.validation.Validator`).

Event time: a row's ``data.time`` value, else the ``X-Event-Time`` header, else the time of
the request. It is logged as ``_event_time`` (UTC microseconds). A time is ISO 8601 (a naive
one is UTC), Unix seconds, or a whole year such as 2016 (the employment data's ``year``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np

from loopml.errors import DataError, LoopmlError, ValidationError
from loopml.serve.http.refusals import tag
from loopml.serve.wire.coercion import quoted


@dataclass(slots=True)
class RowContext:
    """What a request carries beside the model's inputs, for the log: the context columns
    (checked) and per-row event times (UTC microseconds; ``None``: the request time)."""

    columns: dict[str, list[Any]]
    times: list[int | None] | None


F = TypeVar("F", bound=Callable[..., Any])


def _refused_as_context(fn: F) -> F:
    """Errors of ``fn`` count as refusals for reason ``context`` (loopml.serve.http.refusals)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LoopmlError as exc:
            raise tag(exc, "context") from None

    return wrapper  # type: ignore[return-value]


_MAX_TEXT = 256  # characters of one context value (they are logged, not modelled)
_MIN_US = -62135596800 * 10**6  # 0001-01-01
_MAX_US = 253402300799 * 10**6  # 9999-12-31
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def split_context(
    columns: Mapping[str, Any], model_names: frozenset[str], context_names: Sequence[str]
) -> tuple[Mapping[str, Any], dict[str, Any]]:
    """``columns`` split into the model's (and unknown ones) and the declared context ones."""
    if not context_names or columns.keys() == model_names:
        return columns, {}
    context = {k: columns[k] for k in context_names if k in columns and k not in model_names}
    if not context:
        return columns, {}
    return {k: v for k, v in columns.items() if k not in context}, context


@_refused_as_context
def check_context(context: Mapping[str, Any], n: int) -> dict[str, list[Any]]:
    """Each context column as a list of ``n`` scalars (null, boolean, number or text)."""
    out: dict[str, list[Any]] = {}
    for name, values in context.items():
        seq = values.tolist() if isinstance(values, np.ndarray) else values
        if not isinstance(seq, list) or len(seq) != n:
            got = len(seq) if isinstance(seq, list) else "no list of"
            raise ValidationError(
                f"Context column {quoted(name)} has {got} values but the request has {n} "
                "rows. Send one value per row.",
                field=name,
            )
        for i, v in enumerate(seq):
            if v is None or isinstance(v, bool | int):
                continue
            if isinstance(v, float):
                if not math.isfinite(v):
                    seq[i] = None  # NaN from CSV: a missing value
                continue
            if isinstance(v, str) and len(v) <= _MAX_TEXT:
                continue
            raise ValidationError(
                f"Context column {quoted(name)} must hold one number, boolean or text of at "
                f"most {_MAX_TEXT} characters per row; row {i} does not.",
                field=name,
                row=i,
            )
        out[name] = seq
    return out


@_refused_as_context
def event_times(
    values: Sequence[Any] | np.ndarray | None, header: str | None, n: int, column: str | None
) -> list[int | None] | None:
    """Per-row event times in UTC microseconds from the time column's ``values`` (a null row
    falls back to the ``X-Event-Time`` header), else from the header; ``None`` entries (and
    ``None``) mean the request time."""
    header_us = None
    if header is not None:
        header_us = parse_time_us(header.strip())
        if header_us is None:
            raise DataError(
                "X-Event-Time must be an ISO 8601 time such as 2026-11-23T14:00:00Z, or Unix "
                "seconds.",
                field="x-event-time",
            )
    if values is None:
        return None if header_us is None else [header_us] * n
    seq = values.tolist() if isinstance(values, np.ndarray) else list(values)
    out: list[int | None] = []
    for i, v in enumerate(seq):
        if v is None or (isinstance(v, float) and v != v):
            out.append(header_us)
            continue
        us = parse_time_us(v)
        if us is None:
            raise ValidationError(
                f"Column {quoted(column)} (data.time) must hold event times: ISO 8601, Unix "
                f"seconds or a year; row {i} does not.",
                field=str(column)[:64],
                row=i,
            )
        out.append(us)
    return out if any(us is not None for us in out) else None


def parse_time_us(value: Any) -> int | None:
    """``value`` as UTC microseconds, or ``None`` if it is not a time."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 64:
            return None
        try:
            return parse_time_us(float(text)) if text[:1] not in ("", "+") else None
        except ValueError:
            pass
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return (dt - _EPOCH) // timedelta(microseconds=1)
    if isinstance(value, int | float | np.integer | np.floating):
        x = float(value)
        if not math.isfinite(x):
            return None
        if x == int(x) and 1000 <= x <= 9999:  # a year
            return (datetime(int(x), 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
        us = round(x * 1e6)
        return us if _MIN_US <= us <= _MAX_US else None
    return None
