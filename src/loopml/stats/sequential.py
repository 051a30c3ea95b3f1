"""Anytime-valid confidence sequences for a paired difference measured on clustered rows.

A rollout compares a challenger with the champion on the same rows (each row scored by both,
``control.rollout``), and the controller looks again after every batch of labels. A fixed-n
interval checked at every look inflates its error rate with the number of looks (an A/A canary
with a naive test at each of 30 looks "fails" 28% of the time instead of 5%). A *confidence
sequence* holds at every look at once: P(exists t: true value outside C_t) <= alpha, so the
controller may stop at the first look where C_t settles the question.

Construction: the asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy and
Ramdas, "Time-uniform central limit theory and asymptotic confidence sequences", Annals of
Statistics 52(6), 2024, Theorem 2.2 (the Robbins normal-mixture boundary with a plug-in
variance)::

    C_t = est_t +- sigma_t * sqrt( 2 (t rho^2 + 1) / (t^2 rho^2) * log( sqrt(t rho^2 + 1) / alpha ) )

``rho`` tunes where the sequence is tightest: ``rho^2 = (-2 log alpha + log(-2 log alpha + 1))
/ t_opt`` makes it tightest at ``t_opt`` observations (their eq. 3.3). It also covers the
running average of the conditional means when they drift (their section 3.3), which is what a
base rate that swings between requests does.

Observations are *clusters* (requests, or entity keys under sticky routing), never rows: the
rows of one request share their context, so n rows of one request carry far less than n
independent rows' information. The estimand is the row-weighted mean difference
``sum(D_i) / sum(m_i)`` (D_i: the summed per-row differences of cluster i, m_i: its labelled
rows); it is a ratio, handled by its linearisation ``z_i = (D_i - est * m_i) / mean(m)``
(the delta method; the cluster-robust "sandwich" variance of survey statistics), whose
variance is the plug-in ``sigma_t^2``.

Written by hand (about 40 lines): the ``confseq`` package implements this boundary but ships
C++ sources that need a compiler and Boost at install time, for one formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# the sequence is tightest around this many clusters (requests); the width changes slowly
# around it (about 10% wider at a quarter or four times as many)
T_OPT = 200


@dataclass(frozen=True)
class Interval:
    """One look of a confidence sequence for a mean paired difference."""

    estimate: float
    low: float
    high: float
    clusters: int
    rows: int
    alpha: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "requests": self.clusters,
            "rows": self.rows,
            "alpha": self.alpha,
        }


def rho_for(alpha: float, t_opt: int = T_OPT) -> float:
    """The mixture scale that makes the boundary tightest at ``t_opt`` observations."""
    a = -2.0 * math.log(alpha)
    return math.sqrt((a + math.log(a + 1.0)) / t_opt)


def half_width(t: int, sigma: float, alpha: float, rho: float) -> float:
    """The normal-mixture boundary divided by t (Waudby-Smith et al. 2024, Theorem 2.2)."""
    if t <= 0:
        return math.inf
    r2 = rho * rho
    return sigma * math.sqrt(
        2.0 * (t * r2 + 1.0) / (t * t * r2) * math.log(math.sqrt(t * r2 + 1.0) / alpha)
    )


def paired_cs(
    diff_sums: np.ndarray, counts: np.ndarray, alpha: float = 0.05, t_opt: int = T_OPT
) -> Interval:
    """Confidence sequence (one look) for ``sum(diff_sums) / sum(counts)``.

    ``diff_sums[i]`` is the sum over cluster i's rows of (challenger loss - champion loss),
    ``counts[i]`` its number of rows; clusters with no rows are ignored."""
    d = np.asarray(diff_sums, dtype=float)
    m = np.asarray(counts, dtype=float)
    keep = m > 0
    d, m = d[keep], m[keep]
    t = len(m)
    if t == 0:
        return Interval(math.nan, -math.inf, math.inf, 0, 0, alpha)
    est = float(d.sum() / m.sum())
    z = (d - est * m) / m.mean()
    sigma = float(np.sqrt(np.mean(z * z)))
    w = half_width(t, sigma, alpha, rho_for(alpha, t_opt))
    return Interval(est, est - w, est + w, t, int(m.sum()), alpha)
