"""Mergeable profiles of one column, updated a batch (numpy / Arrow array) at a time.

They follow river's protocol: ``update(values) -> self``, ``get()`` and ``+`` (a new profile;
the inputs are left as they were), so a window's profile is the sum of its batches' profiles
and a reference profile is computed once, stored, and never needs the raw rows again.

Numeric: count, nulls (NaN or null), infinities, min/max, mean and variance merged exactly
(Chan, Golub & LeVeque, "Algorithms for computing the sample variance", 1983), and exact counts
on fixed coarse and fine bin edges (``bins.py``). Bins are half-open, ``[e_i, e_i+1)``, with an
open bin below the first edge and one at or above the last. A reference profile takes its edges
from its own data (its first batch): the 0.1% and 99.9% quantiles widened by a margin are the
outer edges (so the outer bins count out-of-range rows exactly) and equal-mass quantiles lie
between. A current-window profile is built with the reference's edges, so histograms line up.
Optionally (``sketch=True``, the default for a reference) a KLL quantile sketch (``sketch.py``)
keeps quantiles beyond the reference's edges; windows skip it, because the fine histogram
already gives KS, Wasserstein and quantiles with certain bounds, and the sketch (which holds
the GIL) was ~40% of a window's profiling time.

Categorical profiles live in ``categorical.py`` and are re-exported here with the union
``ColumnProfile`` and ``column_from_dict``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loopml.stats.bins import (
    BOUND_MARGIN,
    BOUND_QUANTILES,
    DEFAULT_BINS,
    Binner,
    bin_counts,
    binner,
    cell_bounds,
    coarse_starts,
    default_edges,
    histogram_quantiles,
)
from loopml.stats.categorical import DEFAULT_CAP, OTHER, CategoricalProfile
from loopml.stats.sketch import DEFAULT_K, QuantileSketch

__all__ = [
    "BOUND_MARGIN",
    "BOUND_QUANTILES",
    "DEFAULT_BINS",
    "DEFAULT_CAP",
    "OTHER",
    "CategoricalProfile",
    "ColumnProfile",
    "NumericProfile",
    "bin_counts",
    "column_from_dict",
    "default_edges",
]

SUMMARY_RANKS = np.array([0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])


class NumericProfile:
    """Profile of a numeric column; ``edges=None`` takes edges from the first batch.

    ``edges`` are the coarse edges; ``fine_edges`` (default: the coarse ones) must contain
    them. ``sketch`` adds a KLL quantile sketch of parameter ``k``.
    """

    kind = "numeric"

    def __init__(
        self,
        edges: Any = None,
        *,
        fine_edges: Any = None,
        k: int = DEFAULT_K,
        n_bins: int = DEFAULT_BINS,
        dtype: str | None = None,
        sketch: bool = True,
    ) -> None:
        self.n_bins = n_bins
        self.k = k
        self.dtype = dtype
        self.count = 0  # non-null values, infinities included
        self.nulls = 0
        self.n_inf = 0
        self.min = np.inf
        self.max = -np.inf
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations of the finite values
        self.sketch: QuantileSketch | None = QuantileSketch(k) if sketch else None
        self.edges: np.ndarray | None = None
        self.fine_edges: np.ndarray | None = None
        self.fine_counts: np.ndarray | None = None
        self._starts = np.zeros(1, dtype=np.intp)
        self._binner: Binner | None = None
        if edges is not None:
            self._set_edges(
                np.asarray(edges, dtype=np.float64),
                None if fine_edges is None else np.asarray(fine_edges, dtype=np.float64),
            )

    def _set_edges(self, edges: np.ndarray, fine: np.ndarray | None) -> None:
        fine = edges if fine is None else fine
        self._starts = coarse_starts(edges, fine)
        self._binner = binner(fine)
        self.edges, self.fine_edges = edges, fine
        self.fine_counts = np.zeros(len(fine) + 1, dtype=np.int64)

    def empty_like(self, *, sketch: bool | None = None) -> NumericProfile:
        """An empty profile on the same edges (for a current window against this reference)."""
        return NumericProfile(
            self.edges,
            fine_edges=self.fine_edges,
            k=self.k,
            n_bins=self.n_bins,
            sketch=self.sketch is not None if sketch is None else sketch,
        )

    def shares_edges(self, other: NumericProfile) -> bool:
        """Whether both profiles count on the same coarse and fine edges (so they can be merged)."""
        if (
            self.edges is None
            or other.edges is None
            or self.fine_edges is None
            or other.fine_edges is None
        ):
            return False
        return bool(
            np.array_equal(self.edges, other.edges)
            and np.array_equal(self.fine_edges, other.fine_edges)
        )

    @property
    def counts(self) -> np.ndarray | None:
        """Counts in the coarse bins (sums of fine bins)."""
        if self.fine_counts is None:
            return None
        return self.coarsen(self.fine_counts)

    def coarsen(self, fine_counts: np.ndarray) -> np.ndarray:
        """Coarse-bin counts from fine-bin counts (the last axis; one row per resample is fine)."""
        return np.add.reduceat(fine_counts, self._starts, axis=-1)

    @property
    def n_finite(self) -> int:
        return self.count - self.n_inf

    def update(self, values: np.ndarray) -> NumericProfile:
        """Add a float64 array in which NaN marks a missing value."""
        values = np.asarray(values, dtype=np.float64)
        n = len(values)
        if n == 0:  # an empty first batch must not fix the edges
            return self
        if self.fine_edges is None:
            self._set_edges(*default_edges(values, self.n_bins))
        assert (
            self.fine_edges is not None
            and self.fine_counts is not None
            and self._binner is not None
        )
        finite_mask = np.isfinite(values)
        n_fin = int(np.count_nonzero(finite_mask))
        n_nan = 0
        finite = not_nan = values
        if n_fin < n:
            nan_mask = np.isnan(values)
            n_nan = int(np.count_nonzero(nan_mask))
            finite = values[finite_mask]
            not_nan = values[~nan_mask] if n_nan else values  # infinities go to the outer bins
        self.fine_counts += np.bincount(self._binner(not_nan), minlength=len(self.fine_counts))
        n_a = self.n_finite
        self.nulls += n_nan
        self.n_inf += n - n_fin - n_nan
        self.count += n - n_nan
        if n_fin:
            mean = float(finite.mean())
            dev = finite - mean
            np.square(dev, out=dev)  # not np.dot: BLAS threads made it 20x slower under load
            self._merge_moments(n_a, n_fin, mean, float(dev.sum()))
            self.min = min(self.min, float(finite.min()))
            self.max = max(self.max, float(finite.max()))
            if self.sketch is not None:
                self.sketch.update(finite)
        return self

    def _merge_moments(self, n_a: int, n_b: int, mean_b: float, m2_b: float) -> None:
        # Chan et al. (1983) pairwise update.
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * n_a * n_b / n

    def __add__(self, other: NumericProfile) -> NumericProfile:
        if not isinstance(other, NumericProfile):
            return NotImplemented
        if not self.shares_edges(other):
            raise ValueError(
                "cannot merge numeric profiles built on different bin edges; build both with the "
                "same reference (DatasetProfile.from_frame(frame, reference=ref))"
            )
        out = self.empty_like(sketch=False)
        out.dtype = self.dtype or other.dtype
        out.count, out.nulls = self.count + other.count, self.nulls + other.nulls
        out.n_inf = self.n_inf + other.n_inf
        out.min, out.max = min(self.min, other.min), max(self.max, other.max)
        assert self.fine_counts is not None and other.fine_counts is not None
        out.fine_counts = self.fine_counts + other.fine_counts
        n_a, n_b = self.n_finite, other.n_finite
        n = n_a + n_b
        if n:
            delta = other.mean - self.mean
            out.mean = self.mean + delta * n_b / n
            out.m2 = self.m2 + other.m2 + delta * delta * n_a * n_b / n
        if self.sketch is not None and other.sketch is not None:
            out.sketch = self.sketch + other.sketch
        return out

    @property
    def variance(self) -> float:
        """Population variance of the finite values (ddof=0), NaN when empty."""
        n = self.n_finite
        return self.m2 / n if n else float("nan")

    @property
    def std(self) -> float:
        return float(np.sqrt(self.variance))

    def cell_bounds(self, other: NumericProfile | None = None) -> np.ndarray:
        """Boundaries of the fine cells, the open outer cells closed at the data's min/max."""
        assert self.fine_edges is not None
        lo = self.min if other is None else min(self.min, other.min)
        hi = self.max if other is None else max(self.max, other.max)
        return cell_bounds(self.fine_edges, lo, hi)

    def quantiles(self, ranks: np.ndarray) -> tuple[np.ndarray, float]:
        """Quantiles and their rank error: from the KLL sketch when kept, else the fine histogram.

        The sketch's error is DataSketches' bound at 99% confidence; the histogram's is certain:
        the largest share of rows in a cell holding a queried quantile (about 1/320 on data like
        the reference, more where a window piles into few cells).
        """
        if self.sketch is not None and self.sketch.n:
            return self.sketch.quantiles(ranks), self.sketch.rank_error
        if self.fine_counts is None or self.n_finite == 0:
            return np.full(len(ranks), np.nan), float("nan")
        return histogram_quantiles(self.cell_bounds(), self.fine_counts, ranks)

    def get(self) -> dict[str, Any]:
        """Summary statistics (quantiles within the stated rank error)."""
        q, err = self.quantiles(SUMMARY_RANKS)
        n = self.n_finite
        return {
            "kind": self.kind,
            "count": self.count,
            "nulls": self.nulls,
            "infinite": self.n_inf,
            "min": self.min if n else None,
            "max": self.max if n else None,
            "mean": self.mean if n else None,
            "std": self.std if n else None,
            "quantiles": {
                f"p{round(r * 100):02d}": float(v) for r, v in zip(SUMMARY_RANKS, q, strict=True)
            },
            "rank_error": err,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dtype": self.dtype,
            "count": self.count,
            "nulls": self.nulls,
            "n_inf": self.n_inf,
            "min": _f(self.min),
            "max": _f(self.max),
            "mean": self.mean,
            "m2": self.m2,
            "n_bins": self.n_bins,
            "edges": None if self.edges is None else self.edges.tolist(),
            "fine_edges": None if self.fine_edges is None else self.fine_edges.tolist(),
            "fine_counts": None if self.fine_counts is None else self.fine_counts.tolist(),
            "k": self.k,
            "sketch": None if self.sketch is None else self.sketch.to_str(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericProfile:
        fine = d.get("fine_edges", d["edges"])  # profiles written before fine bins: fine = coarse
        out = cls(
            d["edges"],
            fine_edges=fine,
            k=d["k"],
            n_bins=d["n_bins"],
            dtype=d.get("dtype"),
            sketch=False,
        )
        out.count, out.nulls, out.n_inf = d["count"], d["nulls"], d["n_inf"]
        out.min = np.inf if d["min"] is None else d["min"]
        out.max = -np.inf if d["max"] is None else d["max"]
        out.mean, out.m2 = d["mean"], d["m2"]
        counts = d.get("fine_counts", d.get("counts"))
        if counts is not None:
            out.fine_counts = np.asarray(counts, dtype=np.int64)
        if d.get("sketch"):
            out.sketch = QuantileSketch.from_str(d["sketch"], d["k"])
        return out


def _f(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


ColumnProfile = NumericProfile | CategoricalProfile


def column_from_dict(d: dict[str, Any]) -> ColumnProfile:
    """Rebuild a column profile from ``to_dict()`` output."""
    if d.get("kind") == "numeric":
        return NumericProfile.from_dict(d)
    if d.get("kind") == "categorical":
        return CategoricalProfile.from_dict(d)
    raise ValueError(
        f"unknown column profile kind {d.get('kind')!r}; expected 'numeric' or 'categorical'"
    )
