"""Performance estimated before labels arrive: confidence-based performance estimation (CBPE).

If a binary model's score ``p`` is calibrated, a row predicted positive is a true positive
with probability ``p`` and a false positive with probability ``1 - p`` (and the other way
round for a row predicted negative), so the expected confusion matrix of a window is a sum
over its rows, and from it the expected accuracy, precision, recall and F1. ROC AUC is
estimated from the expected positives and negatives above each score (NannyML's CBPE:
Bialek et al., NannyML docs "Confidence-based Performance Estimation"; the method assumes no
concept shift: P(y | x) stays as in training).

Written here rather than taken from NannyML because its estimators need the whole window in
pandas; every estimate below is a sum, so a window is estimated batch by batch and windows
merge with ``+``. ROC AUC uses a histogram of the calibrated scores on ``N_BINS`` equal bins
(rows in one bin count as ties), which moves it by at most the share of pairs sharing a bin.

Calibration: scores are mapped through an isotonic regression (Zadrozny & Elkan, 2002;
scikit-learn's ``IsotonicRegression``) fitted on the version's held-out test predictions at
training time (``fit_calibration``; stored in the reference profile under ``"calibration"``).
Without a stored map the scores are taken as calibrated, and the result says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loopml.evaluate.measure.auc import roc_auc

N_BINS = 1000


class BinaryEstimate:
    """Running sums for CBPE of a binary classifier; ``update`` per batch, merge with ``+``."""

    def __init__(self) -> None:
        self.n = 0
        self.tp = self.fp = self.tn = self.fn = 0.0
        self.hist_n = np.zeros(N_BINS, dtype=np.int64)
        self.hist_p = np.zeros(N_BINS, dtype=np.float64)

    def update(self, p: np.ndarray, predicted_positive: np.ndarray) -> BinaryEstimate:
        """``p``: calibrated P(positive) per row (NaN rows are skipped); ``predicted_positive``:
        True where the served prediction was the positive class."""
        p = np.asarray(p, dtype=np.float64)
        yhat = np.asarray(predicted_positive, dtype=bool)
        ok = np.isfinite(p)
        p, yhat = p[ok], yhat[ok]
        self.n += len(p)
        self.tp += float(p[yhat].sum())
        self.fp += float((1 - p[yhat]).sum())
        self.fn += float(p[~yhat].sum())
        self.tn += float((1 - p[~yhat]).sum())
        b = np.minimum((p * N_BINS).astype(np.int64), N_BINS - 1)
        self.hist_n += np.bincount(b, minlength=N_BINS)
        self.hist_p += np.bincount(b, weights=p, minlength=N_BINS)
        return self

    def __add__(self, other: BinaryEstimate) -> BinaryEstimate:
        out = BinaryEstimate()
        out.n = self.n + other.n
        out.tp, out.fp = self.tp + other.tp, self.fp + other.fp
        out.tn, out.fn = self.tn + other.tn, self.fn + other.fn
        out.hist_n = self.hist_n + other.hist_n
        out.hist_p = self.hist_p + other.hist_p
        return out

    def roc_auc(self) -> float | None:
        """Expected ROC AUC: P(score of a positive > score of a negative), ties counted half."""
        pos = self.hist_p
        neg = self.hist_n - self.hist_p
        if pos.sum() <= 0 or neg.sum() <= 0:
            return None
        # each bin is one score; its rows count as hist_p expected positives, the rest negatives
        share = np.divide(pos, self.hist_n, out=np.zeros(N_BINS), where=self.hist_n > 0)
        try:
            return roc_auc(share, np.arange(N_BINS), sample_weight=self.hist_n)
        except ValueError:  # the expected positives (or negatives) round to nothing: scores
            return None  # a subnormal from 0 or 1 (hypothesis found scores 5e-324 and 0.0)

    def get(self) -> dict[str, Any]:
        """Expected metrics of the rows seen (None where undefined)."""
        if self.n == 0:
            return {"n": 0}
        tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn

        def ratio(a: float, b: float) -> float | None:
            return a / b if b > 0 else None

        return {
            "n": self.n,
            "accuracy": (tp + tn) / self.n,
            "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn),
            "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "roc_auc": self.roc_auc(),
            "positive_rate": (tp + fp) / self.n,
            "base_rate": (tp + fn) / self.n,
            "expected_confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
        }


class MulticlassEstimate:
    """Expected accuracy of a multiclass model: the mean of its top probability (assumes the
    probabilities are calibrated)."""

    def __init__(self) -> None:
        self.n = 0
        self.sum_top = 0.0

    def update(self, top_proba: np.ndarray) -> MulticlassEstimate:
        p = np.asarray(top_proba, dtype=np.float64)
        p = p[np.isfinite(p)]
        self.n += len(p)
        self.sum_top += float(p.sum())
        return self

    def get(self) -> dict[str, Any]:
        return {"n": self.n, "accuracy": self.sum_top / self.n if self.n else None}
