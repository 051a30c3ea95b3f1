"""Confidence intervals for rates.

Wilson's score interval is a closed form, vectorised here over all groups at once (scipy has
it only per proportion, through ``binomtest(...).proportion_ci``, which the tests use as the
oracle).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm


def wilson_interval(
    successes: np.ndarray, trials: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for ``successes / trials``, elementwise; NaN where trials == 0.

    E. B. Wilson, "Probable inference, the law of succession, and statistical inference",
    JASA 22 (1927); the same as ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``.
    """
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z = float(norm.ppf(0.5 + confidence / 2.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1.0 + z * z / n
        center = (p + z * z / (2.0 * n)) / denom
        half = z / denom * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
        lo, hi = center - half, center + half
    bad = n <= 0
    lo = np.where(bad, np.nan, np.clip(lo, 0.0, 1.0))
    hi = np.where(bad, np.nan, np.clip(hi, 0.0, 1.0))
    return lo, hi
