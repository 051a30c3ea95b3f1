"""Distances and tests between two distributions, on counts or on weighted samples.

Pure functions of numpy arrays (no profiles), each checked in tests against scipy. The count
functions also take 2-D arrays (one row per resample) so threshold calibration is vectorised.

- PSI, population stability index: sum (q - p) ln(q / p) (Siddiqi, "Credit Risk Scorecards",
  2006), with empty bins floored at ``eps`` = 1e-4 as Evidently does.
- Jensen-Shannon *distance* (the square root of the divergence) in **base 2**, so it lies in
  [0, 1]; equals ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
- L-infinity: max |p_i - q_i|, TFDV's ``infinity_norm`` for categorical features.
- Chi-square test of homogeneity on the 2 x K table (``scipy.stats.chi2_contingency`` with no
  continuity correction), because the reference is a sample too.
- Two-sample KS statistic and Wasserstein-1 distance of weighted samples (``scipy.stats.ks_2samp``
  and ``scipy.stats.wasserstein_distance`` with unit weights); the KS p-value is scipy's: the
  exact Kolmogorov distribution ``kstwo`` at n_eff = n m / (n + m) while n_eff < 10,000, and its
  asymptotic form ``kstwobign`` beyond (the exact one costs ~0.5 s at n_eff = 500k, see
  docs/design/measurements.md, "Exact Kolmogorov-Smirnov p-values").
- KS and Wasserstein-1 of two histograms on shared cells (``binned_ks``, ``binned_wasserstein``)
  with certain bounds: within a cell each CDF lies between its values at the cell's ends, so
  the exact statistic of the raw rows lies between the returned lower and upper bounds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

PSI_EPS = 1e-4


def _probs(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray, eps: float = PSI_EPS) -> Any:
    """Population stability index of current against reference bin counts.

    1-D counts give a float; 2-D current counts (one row per resample) give an array.
    """
    p = np.clip(_probs(ref_counts), eps, None)
    q = np.clip(_probs(cur_counts), eps, None)
    out = np.sum((q - p) * np.log(q / p), axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def js_distance(ref_counts: np.ndarray, cur_counts: np.ndarray) -> Any:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two count vectors."""
    p, q = np.broadcast_arrays(_probs(ref_counts), _probs(cur_counts))
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> np.ndarray:
        ratio = np.divide(a, m, out=np.ones(m.shape), where=a > 0)
        return np.sum(a * np.log2(ratio), axis=-1)

    out = np.sqrt(np.clip(0.5 * (kl(p) + kl(q)), 0.0, None))
    return float(out) if np.ndim(out) == 0 else out


def linf(ref_counts: np.ndarray, cur_counts: np.ndarray) -> Any:
    """L-infinity distance: the largest absolute difference of frequencies (TFDV)."""
    out = np.max(np.abs(_probs(ref_counts) - _probs(cur_counts)), axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def chi_square(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Chi-square test that both samples come from one categorical distribution: (stat, p)."""
    table = np.vstack([np.asarray(ref_counts, float), np.asarray(cur_counts, float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    # Pearson's statistic on expected counts row_total * col_total / total, (K - 1) degrees of
    # freedom: scipy.stats.chi2_contingency(correction=False) without importing scipy.stats.
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    return stat, float(special.chdtrc(table.shape[1] - 1, stat))


def _weighted_cdfs(
    x: np.ndarray, wx: np.ndarray, y: np.ndarray, wy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    grid = np.union1d(x, y)
    fx = np.concatenate([[0.0], np.cumsum(wx)])[np.searchsorted(x, grid, side="right")] / wx.sum()
    fy = np.concatenate([[0.0], np.cumsum(wy)])[np.searchsorted(y, grid, side="right")] / wy.sum()
    return grid, fx, fy


def ks_statistic(x: np.ndarray, wx: np.ndarray, y: np.ndarray, wy: np.ndarray) -> float:
    """Two-sample KS statistic sup |F_x - F_y| of weighted samples (x and y sorted)."""
    if len(x) == 0 or len(y) == 0:
        return float("nan")
    _, fx, fy = _weighted_cdfs(x, wx, y, wy)
    return float(np.max(np.abs(fx - fy)))


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Two-sided p-value of a KS statistic d for sample sizes n and m (as ks_2samp 'asymp')."""
    if not np.isfinite(d) or n == 0 or m == 0:
        return float("nan")
    en = n * m / (n + m)
    if en < 10_000:
        from scipy import stats  # ~1 s to import; small windows only

        return float(np.clip(stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))
    return float(np.clip(special.kolmogorov(d * np.sqrt(en)), 0.0, 1.0))  # = kstwobign.sf


def wasserstein(x: np.ndarray, wx: np.ndarray, y: np.ndarray, wy: np.ndarray) -> float:
    """Wasserstein-1 (earth mover's) distance of weighted samples, integral of |F_x - F_y|."""
    if len(x) == 0 or len(y) == 0:
        return float("nan")
    grid, fx, fy = _weighted_cdfs(x, wx, y, wy)
    return float(np.sum(np.abs(fx - fy)[:-1] * np.diff(grid)))


def _cell_cdfs(
    ref_counts: np.ndarray, cur_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each CDF just before each cell (F0) and at its right end (F1), for both histograms."""
    p, q = np.broadcast_arrays(_probs(ref_counts), _probs(cur_counts))
    fp1, fq1 = np.cumsum(p, axis=-1), np.cumsum(q, axis=-1)
    return fp1 - p, fp1, fq1 - q, fq1


def binned_ks(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[Any, Any]:
    """KS statistic of two histograms on the same cells: (estimate, upper bound).

    The estimate, max |F_ref - F_cur| over the cell boundaries, is a lower bound of the raw
    rows' statistic; inside a cell [a, b) each CDF lies in [F(a-), F(b-)], so the statistic is
    at most max(F_ref(b-) - F_cur(a-), F_cur(b-) - F_ref(a-)) over the cells.
    """
    fp0, fp1, fq0, fq1 = _cell_cdfs(ref_counts, cur_counts)
    est = np.max(np.abs(fp1 - fq1), axis=-1)
    upper = np.max(np.maximum(fp1 - fq0, fq1 - fp0), axis=-1)
    return (float(est), float(upper)) if np.ndim(est) == 0 else (est, upper)


def binned_wasserstein(
    bounds: np.ndarray, ref_counts: np.ndarray, cur_counts: np.ndarray
) -> tuple[Any, Any, Any]:
    """Wasserstein-1 of two histograms on cells with boundaries ``bounds``: (estimate, lower, upper).

    The estimate spreads each cell's rows evenly over the cell (piecewise-linear CDFs, whose
    integral of |F_ref - F_cur| is exact per cell); the bounds integrate the smallest and largest
    |F_ref - F_cur| that the cell ends allow, so the raw rows' distance lies between them.
    """
    fp0, fp1, fq0, fq1 = _cell_cdfs(ref_counts, cur_counts)
    width = np.diff(np.asarray(bounds, dtype=np.float64))
    d0, d1 = fp0 - fq0, fp1 - fq1
    a0, a1 = np.abs(d0), np.abs(d1)
    same = d0 * d1 >= 0
    crossing = np.divide(
        d0 * d0 + d1 * d1, 2 * (a0 + a1), out=np.zeros(np.shape(d0)), where=(~same) & (a0 + a1 > 0)
    )
    est = np.sum(width * np.where(same, 0.5 * (a0 + a1), crossing), axis=-1)
    lower = np.sum(width * np.clip(np.maximum(fp0 - fq1, fq0 - fp1), 0.0, None), axis=-1)
    upper = np.sum(width * np.maximum(fp1 - fq0, fq1 - fp0), axis=-1)
    if np.ndim(est) == 0:
        return float(est), float(lower), float(upper)
    return est, lower, upper
