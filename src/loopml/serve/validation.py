"""Compile a model signature once into a fast validator for request columns.

A request arrives as columns of Python lists (or NumPy arrays, from CSV). The validator
checks them against the version's :class:`~loopml.data.signature.Signature` and returns a
:class:`Batch` of NumPy arrays in signature order, which :meth:`Validator.frame` turns into
the pandas DataFrame the scikit-learn pipeline was trained on.

Written by hand because the generic tools (pandas casting, pydantic, MLflow's schema
enforcement) cost 100 µs to 10 ms per request (research note serving.md §1, §5.1), while a
model's own predict costs ~250 µs. Here each column is converted in one NumPy call and type
checks read the dtype NumPy inferred; the per-element Python fallback runs only for columns
that hold nulls or mixed types, and to find the first bad row once a check has failed.

Rules, per column kind:

- ``number``: ints and floats (booleans count as 0/1, as in NumPy and pandas); strings are
  rejected. Float columns become float64; int columns stay int64 when every value is integral.
- ``bool``: ``true``/``false`` (or 0/1); a bool column holding nulls becomes an object column.
- ``category``: strings; values outside the training set follow the ``unseen`` policy:
  ``reject`` (422), ``flag`` (kept, and the row is marked so the log records it) or ``accept``.
  When strings and numbers are mixed, numbers are read as their text.
- nulls (JSON ``null``, NaN) are allowed in columns the signature marks nullable, or
  everywhere with ``allow_nulls=True``.

Errors never echo a value the client sent: they name the column, the row and the rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from loopml.data.signature import Column, Signature
from loopml.errors import ValidationError

ExtraPolicy = Literal["reject", "drop"]
UnseenPolicy = Literal["accept", "flag", "reject"]

_MAX_NAMES_IN_MESSAGE = 5


class Batch:
    """Validated rows: one NumPy array per signature column, in signature order.

    ``block`` is set for all-float signatures: a (columns, rows) float64 array whose rows
    are the columns (so no copy is needed for the DataFrame or the log). ``flags`` is
    ``None`` or an object array with, per row, ``None`` or a comma-separated list such as
    ``"unseen:city"`` for the prediction log.
    """

    __slots__ = ("_columns", "block", "flags", "n", "names")

    def __init__(
        self,
        columns: dict[str, np.ndarray] | None,
        n: int,
        flags: np.ndarray | None = None,
        *,
        block: np.ndarray | None = None,
        names: Sequence[str] = (),
    ) -> None:
        self._columns = columns
        self.n = n
        self.flags = flags
        self.block = block
        self.names = tuple(columns) if columns is not None else tuple(names)

    @property
    def columns(self) -> dict[str, np.ndarray]:
        if self._columns is None:
            assert self.block is not None
            self._columns = dict(zip(self.names, self.block, strict=True))
        return self._columns

    @staticmethod
    def concat(batches: Sequence[Batch]) -> Batch:
        """Stack batches validated by the same validator (for micro-batching)."""
        if len(batches) == 1:
            return batches[0]
        n = sum(b.n for b in batches)
        flags = None
        if any(b.flags is not None for b in batches):
            flags = np.concatenate(
                [b.flags if b.flags is not None else np.full(b.n, None, object) for b in batches]
            )
        if all(b.block is not None for b in batches):
            block = np.concatenate([b.block for b in batches if b.block is not None], axis=1)
            return Batch(None, n, flags, block=block, names=batches[0].names)
        names = batches[0].names
        columns = {k: np.concatenate([b.columns[k] for b in batches]) for k in names}
        return Batch(columns, n, flags)


def _short(name: object) -> str:
    text = str(name)
    return repr(text if len(text) <= 64 else text[:61] + "...")


def _names(names: Sequence[object]) -> str:
    shown = ", ".join(_short(n) for n in list(names)[:_MAX_NAMES_IN_MESSAGE])
    more = len(names) - _MAX_NAMES_IN_MESSAGE
    return shown + (f" and {more} more" if more > 0 else "")


def _is_null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _first(values: Sequence[Any] | np.ndarray, bad: Any) -> int:
    """Index of the first value for which ``bad(value)`` holds (error path only)."""
    for i, v in enumerate(values):
        if bad(v):
            return i
    raise AssertionError("no bad value found")  # pragma: no cover - internal invariant


class Validator:
    """A signature compiled for fast request validation.

    ``extra``: what to do with columns the signature lacks (``reject`` or ``drop``).
    ``unseen``: what to do with categories not seen in training (``accept|flag|reject``).
    ``allow_nulls``: accept nulls in every column, not only in nullable ones.
    """

    def __init__(
        self,
        signature: Signature,
        *,
        extra: ExtraPolicy = "reject",
        unseen: UnseenPolicy = "reject",
        allow_nulls: bool = False,
    ) -> None:
        if extra not in ("reject", "drop"):
            raise ValueError(f"extra must be 'reject' or 'drop', got {extra!r}")
        if unseen not in ("accept", "flag", "reject"):
            raise ValueError(f"unseen must be 'accept', 'flag' or 'reject', got {unseen!r}")
        self.signature = signature
        self.extra = extra
        self.unseen = unseen
        self.allow_nulls = allow_nulls
        self._cols = signature.columns
        self._names = tuple(c.name for c in signature.columns)
        self._name_set = frozenset(self._names)
        # object dtype: pandas 3 would make an Arrow-backed string index, whose ``tolist``
        # (scikit-learn reads the feature names on every call) costs ~50 µs a call
        self._index = pd.Index(self._names, dtype=object)
        self._nullable = {c.name: allow_nulls or c.nullable for c in self._cols}
        self._int = {
            c.name: np.dtype(c.dtype).kind in "iu" for c in self._cols if c.kind == "number"
        }
        self._cats = {
            c.name: frozenset(c.categories) for c in self._cols if c.categories is not None
        }
        self._str_cats = {
            name: all(isinstance(v, str) for v in cats) for name, cats in self._cats.items()
        }
        # All-float signatures become one 2-D block: a DataFrame over it costs ~13 µs, while
        # building one from separate arrays costs 40-370 µs.
        self._float_block = all(
            c.kind == "number" and np.dtype(c.dtype).kind == "f" for c in self._cols
        )
        self._float_names = tuple(
            c.name for c in self._cols if c.kind == "number" and np.dtype(c.dtype).kind == "f"
        )
        self._float_pos = {name: j for j, name in enumerate(self._float_names)}
        self._floats_nullable = all(self._nullable[n] for n in self._float_names)

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def float_block(self) -> bool:
        """Every column is a float: batches carry one (columns, rows) block."""
        return self._float_block

    def validate(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> Batch:
        """Check ``columns`` (name -> values) and return them as a :class:`Batch`."""
        if columns.keys() != self._name_set:
            self._check_names(columns)
        block = self._try_block(columns) if len(self._float_names) > 1 else None
        if block is not None and self._float_block:
            return Batch(None, block.shape[1], None, block=block, names=self._names)
        n = -1 if block is None else block.shape[1]
        out: dict[str, np.ndarray] = {}
        flags: np.ndarray | None = None
        for col in self._cols:
            if block is not None and col.name in self._float_pos:
                out[col.name] = block[self._float_pos[col.name]]
                continue
            values = columns[col.name]
            if n < 0:
                n = len(values)
                if n == 0:
                    raise ValidationError(
                        "The request has no rows. Send at least one row.", field=col.name
                    )
            elif len(values) != n:
                raise ValidationError(
                    f"Column {_short(col.name)} has {len(values)} values but the first column "
                    f"has {n}. Send the same number of values for every column.",
                    field=col.name,
                )
            if col.kind == "number":
                out[col.name] = self._number(col, values)
            elif col.kind == "bool":
                out[col.name] = self._bool(col, values)
            else:
                arr, unseen = self._category(col, values)
                out[col.name] = arr
                if unseen is not None:
                    mark = np.full(n, None, dtype=object)
                    mark[unseen] = f"unseen:{col.name}"
                    flags = mark if flags is None else _join_flags(flags, mark)
        return Batch(out, n, flags)

    def _try_block(self, columns: Mapping[str, Any]) -> np.ndarray | None:
        """Float columns in one NumPy call (the per-column cost is ~4 µs otherwise): the
        (columns, rows) float64 block, or None to fall back to the per-column path, which
        then finds and names the error."""
        try:
            block = np.array([columns[k] for k in self._float_names])
        except (ValueError, TypeError):
            return None
        if block.ndim != 2 or block.dtype.kind not in "fiub" or block.shape[1] == 0:
            return None
        block = block.astype(np.float64, copy=False)
        if not self._floats_nullable and np.isnan(block).any():
            return None
        return block

    def frame(self, batch: Batch) -> pd.DataFrame:
        """The DataFrame the model was trained on, columns in signature order."""
        if batch.block is not None:
            return pd.DataFrame(batch.block.T, columns=self._index, copy=False)
        arrays = list(batch.columns.values())
        if self._float_block:
            block = np.empty((batch.n, len(arrays)), dtype=np.float64)
            for j, a in enumerate(arrays):
                block[:, j] = a
            return pd.DataFrame(block, columns=self._index, copy=False)
        try:
            # Private but stable since pandas 1.0; 5-8x faster than the dict constructor.
            return pd.DataFrame._from_arrays(
                arrays, columns=self._index, index=pd.RangeIndex(batch.n), verify_integrity=False
            )
        except (AttributeError, TypeError):  # pragma: no cover - pandas changed it
            return pd.DataFrame(dict(zip(self._names, arrays, strict=True)), columns=self._index)

    # -- checks -------------------------------------------------------------------------

    def _check_names(self, columns: Mapping[str, Any]) -> None:
        given = columns.keys()
        missing = [n for n in self._names if n not in given]
        if missing:
            raise ValidationError(
                f"Missing column(s) {_names(missing)}: the model needs every column of its "
                f"signature ({len(self._names)} columns). Add them to the request.",
                field=missing[0],
            )
        extra = [n for n in given if n not in self._name_set]
        if extra and self.extra == "reject":
            raise ValidationError(
                f"Unknown column(s) {_names(extra)}: the model's signature does not have them. "
                "Remove them from the request (or configure the endpoint to drop extra columns).",
                field=str(extra[0])[:64],
            )

    def _null_error(self, col: Column, row: int) -> ValidationError:
        return ValidationError(
            f"Column {_short(col.name)} is null at row {row}, and the model's signature does "
            "not allow nulls there. Send a value (or allow nulls for this endpoint).",
            field=col.name,
            row=row,
        )

    def _type_error(self, col: Column, row: int, expected: str) -> ValidationError:
        return ValidationError(
            f"Column {_short(col.name)} must hold {expected}; row {row} does not. "
            "Fix the value's type in the request.",
            field=col.name,
            row=row,
        )

    def _array(self, col: Column, values: Sequence[Any] | np.ndarray, what: str) -> np.ndarray:
        if isinstance(values, np.ndarray):
            arr = values
        else:
            try:
                arr = np.asarray(values)
            except (ValueError, TypeError):  # ragged nested lists
                arr = np.empty((0, 0))
        if arr.ndim != 1:
            raise ValidationError(
                f"Column {_short(col.name)} must hold one {what} per row, not nested lists. "
                "Send a flat list of values.",
                field=col.name,
            )
        return arr

    def _number(self, col: Column, values: Sequence[Any] | np.ndarray) -> np.ndarray:
        arr = self._array(col, values, "number")
        kind = arr.dtype.kind
        if kind in "iub":
            if self._int[col.name] and kind != "b":
                return arr.astype(np.int64, copy=False)
            return arr.astype(np.float64, copy=False)
        if kind == "f":
            out = arr.astype(np.float64, copy=False)
        elif kind == "O":
            # nulls or mixed types: the only per-element path
            seq = arr.tolist() if isinstance(values, np.ndarray) else values
            bad = [i for i, v in enumerate(seq) if not (v is None or isinstance(v, int | float))]
            if bad:
                raise self._type_error(col, bad[0], "numbers")
            out = arr.astype(np.float64)
        else:
            raise self._type_error(
                col, _first(values, lambda v: not isinstance(v, int | float)), "numbers"
            )
        if not self._nullable[col.name]:
            nulls = np.isnan(out)
            if nulls.any():
                raise self._null_error(col, int(nulls.argmax()))
        return out

    def _bool(self, col: Column, values: Sequence[Any] | np.ndarray) -> np.ndarray:
        arr = self._array(col, values, "boolean")
        kind = arr.dtype.kind
        if kind == "b":
            return arr
        if kind in "iu":
            ok = (arr == 0) | (arr == 1)
            if not ok.all():
                raise self._type_error(col, int((~ok).argmax()), "booleans")
            return arr.astype(bool)
        seq = arr.tolist() if isinstance(values, np.ndarray) else list(values)
        bad = _first_or_none(
            seq,
            lambda v: (
                not (v is None or v is True or v is False or (isinstance(v, float) and v != v))
            ),
        )
        if bad is not None:
            raise self._type_error(col, bad, "booleans")
        if not self._nullable[col.name]:
            raise self._null_error(col, _first(seq, _is_null))
        return np.array([None if _is_null(v) else v for v in seq], dtype=object)

    def _category(
        self, col: Column, values: Sequence[Any] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        arr = self._array(col, values, "category")
        kind = arr.dtype.kind
        str_only = self._str_cats.get(col.name, True)
        seq: list[Any] = arr.tolist() if isinstance(values, np.ndarray) else list(values)
        has_null = False
        if kind == "O":
            has_null = any(_is_null(v) for v in seq)
            if str_only:
                bad = _first_or_none(seq, lambda v: not (isinstance(v, str) or _is_null(v)))
                if bad is not None:
                    raise self._type_error(col, bad, "strings (categories)")
            if has_null and not self._nullable[col.name]:
                raise self._null_error(col, _first(seq, _is_null))
            if has_null:
                seq = [None if _is_null(v) else v for v in seq]
        elif kind != "U" and str_only:
            raise self._type_error(col, 0, "strings (categories)")
        out = np.array(seq, dtype=object)
        cats = self._cats.get(col.name)
        if cats is None or self.unseen == "accept":
            return out, None
        unseen_values = set(seq).difference(cats)
        unseen_values.discard(None)
        if not unseen_values:
            return out, None
        mask = pd.Index(list(cats)).get_indexer(out) == -1
        if has_null:
            mask &= out != None  # noqa: E711 - elementwise comparison
        if self.unseen == "reject":
            raise ValidationError(
                f"Column {_short(col.name)} has a category at row {int(mask.argmax())} that the "
                f"model never saw in training ({len(cats)} known categories). Send a known "
                "category (or set the endpoint's unseen-category policy to 'flag' or 'accept').",
                field=col.name,
                row=int(mask.argmax()),
            )
        return out, mask


def _first_or_none(values: Sequence[Any], bad: Any) -> int | None:
    for i, v in enumerate(values):
        if bad(v):
            return i
    return None


def _join_flags(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = a.copy()
    for i in np.flatnonzero(b != None):  # noqa: E711 - only rows flagged twice
        out[i] = b[i] if a[i] is None else f"{a[i]},{b[i]}"
    return out
