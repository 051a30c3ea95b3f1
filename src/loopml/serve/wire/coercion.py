"""Check one request column against its signature column and coerce it to a NumPy array.

Each column is converted in one NumPy call and type checks read the dtype NumPy inferred;
the per-element Python fallback runs only for columns that hold nulls or mixed types, and
to find the first bad row once a check has failed.

Rules, per column kind:

- ``number``: ints and floats (booleans count as 0/1, as in NumPy and pandas); strings are
  rejected. Float columns become float64; int columns stay int64 when every value is integral.
- ``bool``: ``true``/``false`` (or 0/1); a bool column holding nulls becomes an object column.
- ``category``: strings; values outside the training set follow the ``unseen`` policy:
  ``reject`` (422), ``flag`` (kept, and the row is marked so the log records it) or ``accept``.
  When strings and numbers are mixed, numbers are read as their text.
- nulls (JSON ``null``, NaN) are allowed where ``nullable`` is true.

Errors never echo a value the client sent: they name the column, the row and the rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from loopml.data.signature import Column
from loopml.errors import ValidationError
from loopml.serve.http.refusals import tag

UnseenPolicy = Literal["accept", "flag", "reject"]


def quoted(name: object) -> str:
    """A column name for an error message: quoted, and cut to 64 characters."""
    text = str(name)
    return repr(text if len(text) <= 64 else text[:61] + "...")


def number_column(
    col: Column, values: Sequence[Any] | np.ndarray, integral: bool, nullable: bool
) -> np.ndarray:
    """``values`` as int64 (``integral`` columns given only ints) or float64."""
    arr = _flat_array(col, values, "number")
    kind = arr.dtype.kind
    if kind in "iub":
        if integral and kind != "b":
            return arr.astype(np.int64, copy=False)
        return arr.astype(np.float64, copy=False)
    if kind == "f":
        out = arr.astype(np.float64, copy=False)
    elif kind == "O":
        # nulls or mixed types: the only per-element path
        seq = arr.tolist() if isinstance(values, np.ndarray) else values
        bad = [i for i, v in enumerate(seq) if not (v is None or isinstance(v, int | float))]
        if bad:
            raise _type_error(col, bad[0], "numbers")
        out = arr.astype(np.float64)
    else:
        raise _type_error(col, _first(values, lambda v: not isinstance(v, int | float)), "numbers")
    if not nullable:
        nulls = np.isnan(out)
        if nulls.any():
            raise _null_error(col, int(nulls.argmax()))
    return out


def bool_column(col: Column, values: Sequence[Any] | np.ndarray, nullable: bool) -> np.ndarray:
    """``values`` as a bool array, or an object array of bools and ``None`` if any is null."""
    arr = _flat_array(col, values, "boolean")
    kind = arr.dtype.kind
    if kind == "b":
        return arr
    if kind in "iu":
        ok = (arr == 0) | (arr == 1)
        if not ok.all():
            raise _type_error(col, int((~ok).argmax()), "booleans")
        return arr.astype(bool)
    seq = arr.tolist() if isinstance(values, np.ndarray) else list(values)
    bad = _first_or_none(
        seq,
        lambda v: not (v is None or v is True or v is False or (isinstance(v, float) and v != v)),
    )
    if bad is not None:
        raise _type_error(col, bad, "booleans")
    if not nullable:
        raise _null_error(col, _first(seq, _is_null))
    return np.array([None if _is_null(v) else v for v in seq], dtype=object)


def category_column(
    col: Column,
    values: Sequence[Any] | np.ndarray,
    nullable: bool,
    categories: frozenset[Any] | None,
    str_only: bool,
    unseen: UnseenPolicy,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``values`` as an object array, and the mask of rows holding a category outside
    ``categories`` when ``unseen`` is ``flag`` (else ``None``). ``str_only``: every known
    category is a string, so other types are rejected."""
    seq: list[Any]
    has_null = False
    if type(values) is list and all(type(v) is str for v in values):
        seq = values  # the common case (JSON strings), without NumPy's type inference
    else:
        arr = _flat_array(col, values, "category")
        kind = arr.dtype.kind
        seq = arr.tolist() if isinstance(values, np.ndarray) else list(values)
        if kind == "O":
            has_null = any(_is_null(v) for v in seq)
            if str_only:
                bad = _first_or_none(seq, lambda v: not (isinstance(v, str) or _is_null(v)))
                if bad is not None:
                    raise _type_error(col, bad, "strings (categories)")
            if has_null and not nullable:
                raise _null_error(col, _first(seq, _is_null))
            if has_null:
                seq = [None if _is_null(v) else v for v in seq]
        elif kind != "U" and str_only:
            raise _type_error(col, 0, "strings (categories)")
    out = np.array(seq, dtype=object)
    if categories is None or unseen == "accept":
        return out, None
    unseen_values = set(seq).difference(categories)
    unseen_values.discard(None)
    if not unseen_values:
        return out, None
    mask = pd.Index(list(categories)).get_indexer(out) == -1
    if has_null:
        mask &= out != None  # noqa: E711 - elementwise comparison
    if unseen == "reject":
        raise tag(
            ValidationError(
                f"Column {quoted(col.name)} has a category at row {int(mask.argmax())} that the "
                f"model never saw in training ({len(categories)} known categories). Send a known "
                "category (or set the endpoint's unseen-category policy to 'flag' or 'accept').",
                field=col.name,
                row=int(mask.argmax()),
            ),
            "unseen_category",
        )
    return out, mask


def _flat_array(col: Column, values: Sequence[Any] | np.ndarray, what: str) -> np.ndarray:
    if isinstance(values, np.ndarray):
        arr = values
    else:
        try:
            arr = np.asarray(values)
        except (ValueError, TypeError):  # ragged nested lists
            arr = np.empty((0, 0))
    if arr.ndim != 1:
        raise tag(
            ValidationError(
                f"Column {quoted(col.name)} must hold one {what} per row, not nested lists. "
                "Send a flat list of values.",
                field=col.name,
            ),
            "type",
        )
    return arr


def _null_error(col: Column, row: int) -> ValidationError:
    return tag(
        ValidationError(
            f"Column {quoted(col.name)} is null at row {row}, and this model version does not "
            "take a missing value there (the column had none in training, and the model failed "
            "on one when it was loaded, or deploy.nulls is 'reject'). Send a value.",
            field=col.name,
            row=row,
        ),
        "null",
    )


def _type_error(col: Column, row: int, expected: str) -> ValidationError:
    return tag(
        ValidationError(
            f"Column {quoted(col.name)} must hold {expected}; row {row} does not. "
            "Fix the value's type in the request.",
            field=col.name,
            row=row,
        ),
        "type",
    )


def _is_null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _first(values: Sequence[Any] | np.ndarray, bad: Any) -> int:
    """Index of the first value for which ``bad(value)`` holds (error path only)."""
    for i, v in enumerate(values):
        if bad(v):
            return i
    raise AssertionError("no bad value found")  # pragma: no cover - internal invariant


def _first_or_none(values: Sequence[Any], bad: Any) -> int | None:
    for i, v in enumerate(values):
        if bad(v):
            return i
    return None
