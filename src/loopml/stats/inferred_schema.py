"""A data schema inferred from the training reference profile, with tolerant bounds.

Numeric bounds are the reference profile's outer bin edges: the 0.1% and 99.9% quantiles
widened by 25% of their span (``bins.BOUND_MARGIN``), not the exact training min/max, so a
new window is not flagged for a value slightly beyond anything seen in training; and because
they are edges of the profile, a window built on the reference counts out-of-range rows
exactly. Categorical columns keep their allowed levels (when the reference stayed under the
level cap) and the share of each level, for unseen-category and vanished-segment checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from loopml.errors import DataError
from loopml.stats.bins import histogram_cdf
from loopml.stats.column import CategoricalProfile, NumericProfile
from loopml.stats.profile import DatasetProfile, Frame

FORMAT = "loopml.schema/1"


@dataclass
class ColumnSchema:
    """What one column looked like in training."""

    name: str
    kind: str
    dtype: str | None
    null_rate: float
    lower: float | None = None
    upper: float | None = None
    out_of_range_rate: float = 0.0  # share of training values outside [lower, upper)
    categories: list[str] | None = None  # None: too many levels to enumerate
    shares: dict[str, float] = field(default_factory=dict)


@dataclass
class Schema:
    """Columns of the training data and its row count."""

    columns: dict[str, ColumnSchema]
    n_rows: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "n_rows": self.n_rows,
            "columns": {n: asdict(c) for n, c in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Schema:
        if d.get("format") != FORMAT:
            raise DataError(
                f"not a loopml schema (format {d.get('format')!r}, expected "
                f"{FORMAT!r}); was it written by Schema.to_dict?",
                field="format",
            )
        return cls({n: ColumnSchema(**c) for n, c in d["columns"].items()}, int(d["n_rows"]))

    def template(self) -> DatasetProfile:
        """An empty profile whose numeric edges are the bounds, to profile a frame for checks."""
        cols: dict[str, NumericProfile | CategoricalProfile] = {}
        for name, c in self.columns.items():
            if c.kind == "numeric":
                edges = [] if c.lower is None else [c.lower, c.upper]
                cols[name] = NumericProfile(np.unique(np.asarray(edges, dtype=float)), sketch=False)
            else:
                cols[name] = CategoricalProfile()
        return DatasetProfile(cols, 0)


def out_of_range(prof: NumericProfile, lower: float, upper: float) -> tuple[int, int, bool]:
    """Rows below ``lower`` and at or above ``upper``; exact when both are bin edges.

    Otherwise estimated from the quantile sketch, or from the fine histogram when there is none.
    """
    for edges, counts in ((prof.edges, prof.counts), (prof.fine_edges, prof.fine_counts)):
        if edges is None or counts is None:
            continue
        lo_idx, hi_idx = np.flatnonzero(edges == lower), np.flatnonzero(edges == upper)
        if len(lo_idx) and len(hi_idx):
            return int(counts[: lo_idx[0] + 1].sum()), int(counts[hi_idx[0] + 1 :].sum()), True
    points = np.array([lower, upper]) if upper > lower else np.array([lower])
    n = prof.n_finite
    if prof.sketch is not None and prof.sketch.n:
        cdf = prof.sketch.cdf(points)
    elif prof.fine_counts is not None and n:
        finite_counts = prof.fine_counts.copy()
        finite_counts[-1] -= (
            prof.n_inf
        )  # infinities sit in the outer cells, not between min and max
        cdf = histogram_cdf(prof.cell_bounds(), np.clip(finite_counts, 0, None), points)
    else:
        return 0, prof.n_inf, False
    below = round(cdf[0] * n)
    above = round((1 - cdf[-1]) * n) + prof.n_inf
    return int(below), int(above), False


def infer_schema(reference: DatasetProfile | Frame, *, segment_min_share: float = 0.0) -> Schema:
    """Infer a schema from a reference profile (or a training frame, profiled first)."""
    if not isinstance(reference, DatasetProfile):
        reference = DatasetProfile.from_frame(reference)
    cols: dict[str, ColumnSchema] = {}
    n = reference.n_rows
    for name, prof in reference.columns.items():
        null_rate = prof.nulls / n if n else 0.0
        if isinstance(prof, NumericProfile):
            lower = upper = None
            oor = 0.0
            if prof.edges is not None and len(prof.edges) >= 2 and prof.count:
                lower, upper = float(prof.edges[0]), float(prof.edges[-1])
                below, above, _ = out_of_range(prof, lower, upper)
                oor = (below + above) / prof.count
            cols[name] = ColumnSchema(name, "numeric", prof.dtype, null_rate, lower, upper, oor)
        else:
            total = max(prof.count, 1)
            shares = {
                k: v / total for k, v in prof.counts.items() if v / total >= segment_min_share
            }
            cats = sorted(prof.counts) if prof.other == 0 else None
            cols[name] = ColumnSchema(
                name, "categorical", prof.dtype, null_rate, categories=cats, shares=shares
            )
    return Schema(cols, n)
