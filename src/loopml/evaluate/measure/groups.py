"""Group keys for slices and fairness: factorize once, then count with ``np.bincount``.

Written by hand because the libraries that do per-group metrics (fairlearn's MetricFrame,
pandas ``groupby().apply``) call a metric function once per group through layers of
validation; fairlearn takes 13.5 s for one ratio on 1M rows where a bincount takes well under
a second (docs/design/measurements.md, "Fairness"). Here every column is factorized once, the
codes are combined into one integer key in mixed radix, and only combinations that occur in
the data become groups (fairlearn's cartesian product adds all-NaN rows for unseen ones).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import DataError


@dataclass(frozen=True)
class Groups:
    """Observed groups of one or more columns.

    ``codes[i]`` is the group of row ``i`` (0 .. ``n_groups - 1``); ``labels[g]`` maps each
    column to the value of group ``g``; groups are sorted by their values column by column.
    """

    columns: tuple[str, ...]
    codes: np.ndarray
    labels: tuple[dict[str, Any], ...]

    @property
    def n_groups(self) -> int:
        return len(self.labels)

    def name(self, g: int) -> str:
        """Human name of group ``g``, e.g. ``"SEX=2 & RAC1P=1"``."""
        return slice_name(self.labels[g])

    def counts(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Rows (or the sum of ``weights``) per group."""
        return np.bincount(self.codes, weights=weights, minlength=self.n_groups)


def slice_name(columns: Mapping[str, Any]) -> str:
    """``{"SEX": "2", "RAC1P": "1"}`` -> ``"SEX=2 & RAC1P=1"``; the empty mapping is ``overall``."""
    if not columns:
        return "overall"
    return " & ".join(f"{k}={v}" for k, v in columns.items())


def _plain(value: Any) -> Any:
    """numpy scalars to Python scalars, NaN to None, so labels serialise as JSON."""
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and np.isnan(value):
            return None
    return value


def column_of(frame: Any, name: str) -> pd.Series:
    """One column from a DataFrame or a mapping of arrays, with a clear error when missing."""
    try:
        col = frame[name]
    except (KeyError, IndexError, TypeError):
        have = list(frame.columns) if hasattr(frame, "columns") else list(frame)
        raise DataError(
            f"Column {name!r} is not in the evaluation data. Columns present: {have}. "
            "Declare only columns the held-out frame has (data.sensitive / segments).",
            field=name,
        ) from None
    return col if isinstance(col, pd.Series) else pd.Series(np.asarray(col), name=name)


def group_rows(frame: Any, columns: Sequence[str]) -> Groups:
    """Factorize ``columns`` of ``frame`` jointly into observed groups (missing values form
    their own group, labelled ``None``)."""
    columns = tuple(columns)
    if not columns:
        raise DataError("group_rows needs at least one column.")
    key: np.ndarray | None = None
    uniques: list[Any] = []
    radices: list[int] = []
    for name in columns:
        codes, values = pd.factorize(column_of(frame, name), sort=True, use_na_sentinel=False)
        codes = codes.astype(np.int64)
        uniques.append(values)
        radices.append(max(len(values), 1))
        if float(np.prod(radices, dtype=float)) >= 2.0**62:
            raise DataError(
                f"The columns {list(columns)} have too many value combinations to group by "
                "(over 2^62). Slice by fewer or lower-cardinality columns.",
                field=name,
            )
        key = codes if key is None else key * radices[-1] + codes
    assert key is not None
    observed, inverse = np.unique(key, return_inverse=True)
    labels = []
    for combined in observed.tolist():
        parts = []
        for values, radix in zip(reversed(uniques), reversed(radices), strict=True):
            combined, code = divmod(combined, radix)
            parts.append(_plain(values[code]))
        labels.append(dict(zip(columns, reversed(parts), strict=True)))
    return Groups(columns=columns, codes=inverse.astype(np.int64).ravel(), labels=tuple(labels))
