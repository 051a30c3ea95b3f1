"""ROC AUC: the one implementation every part of loopml uses.

The Mann-Whitney U statistic on midranks (Hanley and McNeil 1982): the share of
(positive, negative) pairs in which the positive scores higher, ties counting one half,
the same number as scikit-learn's ``roc_auc_score`` to rounding. Written here rather than
calling scikit-learn because its input validation costs more than the AUC itself when the AUC
is taken once per slice, per shuffled column (permutation importance), per feature column
(leakage), per resample (bootstrap) or per monitor window (estimated AUC); and scikit-learn
takes one score column and one label column at a time.

Weighted form: each row carries a weight ``w`` and a label ``y`` in [0, 1] (1 positive, 0
negative, a fraction for an expected label, as in confidence-based estimation), so it counts
``w*y`` as a positive and ``w*(1-y)`` as a negative. With ``R`` the weighted midrank of a row
among all rows (weight below it plus half the weight tied with it, itself included),

    U = sum(w*y*R) - (sum(w*y))**2 / 2,   AUC = U / (sum(w*y) * sum(w*(1-y)))

because the positive-against-positive pairs inside ``sum(w*y*R)`` add up to exactly half the
squared positive weight. Unit weights and 0/1 labels give the textbook rank formula. The
scores are sorted once (:class:`RankedScores`); every weighting after that costs a cumulative
sum, and many score columns and label columns are judged in one matrix product.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class RankedScores:
    """Score columns (``(n,)`` or ``(n, m)``, no NaN) sorted once, for AUCs under many labels
    and weightings."""

    def __init__(self, score: Any) -> None:
        s = np.asarray(score, dtype=float)
        self.n = len(s)
        self.columns = 1 if s.ndim == 1 else s.shape[1]
        s = s.reshape(self.n, self.columns)
        self.order = np.argsort(s, axis=0, kind="stable")
        ranked = np.take_along_axis(s, self.order, axis=0)
        # rows with equal scores form a tie block [start, end) in sorted position
        new = np.ones(ranked.shape, dtype=bool)
        new[1:] = ranked[1:] != ranked[:-1]
        ends_here = np.ones(ranked.shape, dtype=bool)
        ends_here[:-1] = new[1:]
        pos = np.arange(self.n)[:, None]
        self.start = np.maximum.accumulate(np.where(new, pos, 0), axis=0)
        self.end = np.minimum.accumulate(np.where(ends_here, pos + 1, self.n)[::-1], axis=0)[::-1]

    def _midranks_sorted(self, w_sorted: np.ndarray, col: int | None = None) -> np.ndarray:
        """Weighted midranks in sorted position; ``w_sorted`` is ``(n, k)``, and ``col`` picks
        the tie blocks of one score column for all k weightings."""
        c = np.zeros((self.n + 1, w_sorted.shape[1]))
        np.cumsum(w_sorted, axis=0, out=c[1:])
        if col is None:
            lo = np.take_along_axis(c, self.start, axis=0)
            hi = np.take_along_axis(c, self.end, axis=0)
        else:
            lo, hi = c[self.start[:, col]], c[self.end[:, col]]
        result: np.ndarray = lo + 0.5 * (hi - lo)
        return result

    def midranks(self, weight: Any = None) -> np.ndarray:
        """``(n, m)``: per row and score column, the weight of the rows scored below it plus
        half the weight of the rows tied with it (itself included); unit weights by default."""
        w = np.ones(self.n) if weight is None else np.asarray(weight, dtype=float)
        ranked = self._midranks_sorted(w[self.order])
        out = np.empty_like(ranked)
        np.put_along_axis(out, self.order, ranked, axis=0)
        return out

    def roc_auc(self, y_true: Any, sample_weight: Any = None) -> np.ndarray:
        """``(k, m)`` AUCs of every score column for every label column.

        ``y_true``: ``(n,)`` or ``(n, k)``, 1 positive, 0 negative or a fraction between.
        ``sample_weight``: None, ``(n,)`` shared by every label column, or ``(n, k)`` one
        weighting per label column (e.g. bootstrap resample counts; one score column only).
        NaN where a label column has no positive or no negative weight.
        """
        y = np.asarray(y_true, dtype=float).reshape(self.n, -1)
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if w is None or w.ndim == 1:
            wp = y if w is None else y * w[:, None]
            wn = (1.0 - y) if w is None else (1.0 - y) * w[:, None]
            u = wp.T @ self.midranks(w)  # (k, m)
        else:
            if self.columns != 1:
                raise ValueError("Per-label weights need a single score column.")
            w = w.reshape(self.n, -1)
            wp, wn = y * w, (1.0 - y) * w
            order = self.order[:, 0]
            u = (wp[order] * self._midranks_sorted(w[order], col=0)).sum(axis=0)[:, None]
        p, q = wp.sum(axis=0), wn.sum(axis=0)
        u = u - 0.5 * (p * p)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            auc: np.ndarray = np.where((p > 0) & (q > 0), 1.0, np.nan)[:, None] * (
                u / (p * q)[:, None]
            )
        return auc


def roc_auc(y_true: Any, y_score: Any, sample_weight: Any = None) -> float:
    """ROC AUC of one score column, as scikit-learn's ``roc_auc_score(y_true, y_score,
    sample_weight=...)`` for a binary task; ``y_true`` is boolean or 0/1 (or an expected label
    in [0, 1]). Raises ``ValueError`` when only one class is present, as scikit-learn does."""
    value = float(RankedScores(y_score).roc_auc(y_true, sample_weight)[0, 0])
    if np.isnan(value):
        raise ValueError("Only one class present in y_true; ROC AUC is not defined then.")
    return value
