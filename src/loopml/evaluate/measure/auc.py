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
        # one score column per row of a (m, n) array: every pass below runs along contiguous rows
        cols = np.ascontiguousarray(s.reshape(self.n, -1).T)
        self.columns = len(cols)
        self.order = np.argsort(cols, axis=1)  # ties share a block, so their order is irrelevant
        ranked = np.take_along_axis(cols, self.order, axis=1)
        # rows with equal scores form a tie block [start, end) in sorted position
        new = np.ones(ranked.shape, dtype=bool)
        new[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
        ends_here = np.ones(ranked.shape, dtype=bool)
        ends_here[:, :-1] = new[:, 1:]
        pos = np.arange(self.n)
        self.start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
        self.end = np.minimum.accumulate(np.where(ends_here, pos + 1, self.n)[:, ::-1], axis=1)
        self.end = self.end[:, ::-1]

    def _midranks(self, weight: np.ndarray | None) -> np.ndarray:
        """``(m, n)``: :meth:`midranks` laid out one score column per row."""
        if weight is None:  # the cumulative weight at sorted position i is i
            ranked = 0.5 * (self.start + self.end)
        else:
            c = np.zeros((self.columns, self.n + 1))
            np.cumsum(weight[self.order], axis=1, out=c[:, 1:])
            ranked = np.take_along_axis(c, self.start, axis=1)
            ranked += np.take_along_axis(c, self.end, axis=1)
            ranked *= 0.5
        out = np.empty_like(ranked)
        np.put_along_axis(out, self.order, ranked, axis=1)
        return out

    def midranks(self, weight: Any = None) -> np.ndarray:
        """``(n, m)``: per row and score column, the weight of the rows scored below it plus
        half the weight of the rows tied with it (itself included); unit weights by default."""
        w = None if weight is None else np.asarray(weight, dtype=float)
        return self._midranks(w).T

    def roc_auc(self, y_true: Any, sample_weight: Any = None) -> np.ndarray:
        """``(k, m)`` AUCs of every score column for every label column.

        ``y_true``: ``(n,)`` or ``(n, k)``, 1 positive, 0 negative or a fraction between.
        ``sample_weight``: None, ``(n,)`` shared by every label column, or ``(n, k)`` one
        weighting per label column (e.g. bootstrap resample counts; one score column only).
        NaN where a label column has no positive or no negative weight.
        """
        # label columns as rows (k, n), so every sum runs along contiguous memory
        yk = np.ascontiguousarray(np.asarray(y_true, dtype=float).reshape(self.n, -1).T)
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if w is None or w.ndim == 1:
            wpk = yk if w is None else yk * w
            total: Any = float(self.n) if w is None else float(w.sum())
            p = wpk.sum(axis=1)
            # (k, m); einsum's own loop, not a BLAS call that spins up threads for a dot product
            u = np.einsum("kn,mn->km", wpk, self._midranks(w))
        else:
            if self.columns != 1:
                raise ValueError("Per-label weights need a single score column.")
            # one weighting per label column, laid out (k, n) like the labels
            order = self.order[0]
            wk = np.ascontiguousarray(w.reshape(self.n, -1).T)[:, order]
            wpk = wk * yk[:, order]
            c = np.zeros((wk.shape[0], self.n + 1))
            np.cumsum(wk, axis=1, out=c[:, 1:])
            ranked = c[:, self.start[0]]
            ranked += c[:, self.end[0]]
            ranked *= 0.5
            u = np.einsum("kn,kn->k", wpk, ranked)[:, None]
            p, total = wpk.sum(axis=1), c[:, -1]
        q = total - p
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
