"""Perturbations of tabular rows for behavioural tests (CheckList's INV and DIR, for tables).

Each function returns perturbed copies of a frame, never touching the input. Column-wise and
vectorised; categorical columns keep their dtype (new values are added to the categories).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import ConfigError

#: perturbation names an INV test accepts
INV_PERTURBATIONS: tuple[str, ...] = ("noise", "synonyms", "swap")


def check_columns(X: pd.DataFrame, columns: Sequence[str], key: str) -> None:
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise ConfigError(
            f"{key} names column(s) {missing} that the model's input does not "
            f"have. Columns: {list(X.columns)}.",
            field=key,
        )


def _assign(X: pd.DataFrame, column: str, values: Any) -> None:
    """Set ``X[column]`` keeping a categorical dtype (adding unseen values as categories)."""
    old = X[column]
    if isinstance(old.dtype, pd.CategoricalDtype):
        values = pd.Series(values, index=X.index)
        extra = pd.Index(values.dropna().unique()).difference(old.cat.categories)
        cats = old.cat.categories.append(extra) if len(extra) else old.cat.categories
        X[column] = pd.Categorical(values, categories=cats, ordered=old.cat.ordered)
    else:
        series = pd.Series(values, index=X.index)
        try:
            X[column] = series.astype(old.dtype)
        except (TypeError, ValueError):
            X[column] = series


def noise(
    X: pd.DataFrame, columns: Sequence[str], scale: float, rng: np.random.Generator
) -> pd.DataFrame:
    """Add Gaussian noise with standard deviation ``scale`` x the column's standard deviation
    (integer columns are rounded back to integers)."""
    out = X.copy()
    for col in columns:
        s = X[col]
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            raise ConfigError(
                f"INV noise needs numeric columns; {col!r} is {s.dtype}. Use the "
                "'synonyms' perturbation for categories.",
                field=col,
            )
        sd = float(np.nanstd(s.to_numpy(dtype=float))) or 1.0
        moved = s.to_numpy(dtype=float) + rng.normal(0.0, scale * sd, len(s))
        if pd.api.types.is_integer_dtype(s):
            moved = np.round(moved).astype(s.dtype)
        out[col] = moved
    return out


def synonyms(X: pd.DataFrame, mapping: Mapping[str, Mapping[Any, Any]]) -> pd.DataFrame:
    """Replace values by their synonyms, e.g. ``{"MAR": {"5": "never married"}}``."""
    out = X.copy()
    for col, table in mapping.items():
        values = X[col].astype(object)
        _assign(out, col, values.map(lambda v, t=table: t.get(v, v)))
    return out


def swaps(
    X: pd.DataFrame, columns: Sequence[str]
) -> list[tuple[str, Any, np.ndarray, pd.DataFrame]]:
    """For each column and each value it takes in ``X``: the rows holding another value, with
    that value swapped in. Returns ``(column, value, row_positions, perturbed_rows)``."""
    out = []
    for col in columns:
        current = X[col]
        for value in pd.unique(current.dropna()):
            rows = np.flatnonzero((current != value).to_numpy())
            if not len(rows):
                continue
            part = X.iloc[rows].copy()
            _assign(part, col, np.full(len(rows), value, dtype=object))
            out.append((col, value, rows, part))
    return out


def step_values(
    X: pd.DataFrame, column: str, step: float, order: Sequence[Any] | None
) -> tuple[np.ndarray, pd.DataFrame]:
    """Move ``column`` by ``step``: numbers by adding it, ordered categories by ``step``
    levels of ``order`` (default: the categories in numeric order when they all parse as
    numbers). Rows that would leave the observed range or the order are dropped. Returns
    ``(row_positions, perturbed_rows)``."""
    s = X[column]
    is_cat = (
        isinstance(s.dtype, pd.CategoricalDtype)
        or s.dtype == object
        or pd.api.types.is_string_dtype(s)
    )
    if not is_cat and order is None:
        values = s.to_numpy(dtype=float)
        moved = values + step
        lo, hi = np.nanmin(values), np.nanmax(values)
        rows = np.flatnonzero(np.isfinite(moved) & (moved >= lo) & (moved <= hi))
        part = X.iloc[rows].copy()
        new = moved[rows]
        part[column] = (
            new.astype(s.dtype)
            if pd.api.types.is_integer_dtype(s) and float(step).is_integer()
            else new
        )
        return rows, part
    if order is None:
        levels = (
            list(s.cat.categories)
            if isinstance(s.dtype, pd.CategoricalDtype)
            else list(pd.unique(s.dropna()))
        )
        try:
            order = sorted(levels, key=float)
        except (TypeError, ValueError):
            raise ConfigError(
                f"DIR on {column!r} needs `order` (the levels from low to high): "
                f"its values {levels[:10]} are not numbers.",
                field="order",
            ) from None
    if not float(step).is_integer():
        raise ConfigError(
            f"DIR step on the ordered column {column!r} counts levels and must be "
            f"a whole number; got {step!r}.",
            field="step",
        )
    position = {v: i for i, v in enumerate(order)}
    pos = s.astype(object).map(position).to_numpy(dtype=float)
    target = pos + int(step)
    rows = np.flatnonzero(np.isfinite(target) & (target >= 0) & (target < len(order)))
    part = X.iloc[rows].copy()
    new = np.array(order, dtype=object)[target[rows].astype(int)]
    _assign(part, column, new)
    return rows, part
