"""Target leakage: how well each feature *alone* separates the label (single-feature ROC AUC).

A feature whose single-feature AUC is close to 1 (a copy of the label, a post-outcome field,
a row id sorted by label) makes a model look perfect in evaluation and fail in production.

- Numeric columns: the rank (Mann-Whitney) AUC of the raw value, ``AUC = (R+ - n+(n+ + 1)/2) /
  (n+ n-)`` with average ranks for ties (Hanley & McNeil 1982), taken in the better direction
  (``max(AUC, 1 - AUC)``). Missing values rank below every value, so "missing iff positive"
  also shows. The columns are ranked once together and a matrix product gives every AUC
  (:class:`loopml.evaluate.measure.auc.RankedScores`).
  A non-monotone leak (the label is ``|x| > 1``) has a rank AUC near 0.5, so each numeric
  column is also cut into ``n_bins`` quantile bins and scored like a categorical one; the
  larger of the two AUCs counts.
- Categorical columns: the AUC of the *out-of-fold* target mean of each category (k folds;
  each row is encoded with the smoothed mean of its category in the other folds). Encoding
  in-sample would give a high-cardinality id a perfect AUC; out of fold an id scores ~0.5
  while a truly leaking category keeps its AUC. Counts per (fold, category) come from one
  ``np.bincount``.

Written by hand: scikit-learn's ``roc_auc_score`` is one column at a time and has no
out-of-fold category encoding of this shape; ``TargetEncoder`` cross-fits but smooths
differently and needs a fitted transformer per column (the oracle in the tests is sklearn's).
Multiclass targets are scored one-vs-rest and averaged by class prevalence; a numeric
(regression) target is split at its median.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from loopml.evaluate.measure.auc import RankedScores


def binary_targets(
    y: Any, task: str = "classification"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(T, weights, names)``: one 0/1 column per one-vs-rest target and its weight.

    Binary: one column (the larger label is positive); multiclass: one per class weighted by
    prevalence; regression: ``y > median``.
    """
    y = np.asarray(y)
    if task == "regression":
        yf = y.astype(float)
        return (yf > np.nanmedian(yf)).astype(float)[:, None], np.ones(1), ["> median"]
    classes, idx = np.unique(y, return_inverse=True)
    if len(classes) <= 2:
        pos = len(classes) - 1
        return (idx == pos).astype(float)[:, None], np.ones(1), [str(classes[pos])]
    T = (idx[:, None] == np.arange(len(classes))[None, :]).astype(float)
    return T, T.mean(axis=0), [str(c) for c in classes]


def numeric_auc(X: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Rank AUC of each numeric column of ``X`` for each target column of ``T`` (k x m);
    NaN ranks below every value."""
    X = np.asarray(X, dtype=float)
    if X.shape[1] == 0:
        return np.empty((T.shape[1], 0))
    lowest = np.nanmin(np.where(np.isfinite(X), X, np.nan), axis=0, initial=np.inf)
    lowest = np.where(np.isfinite(lowest), lowest, 0.0)
    X = np.where(np.isnan(X), lowest - 1.0, X)
    return RankedScores(X).roc_auc(T)


def oof_target_mean(
    codes: np.ndarray, T: np.ndarray, folds: np.ndarray, n_folds: int, smoothing: float = 1.0
) -> np.ndarray:
    """Out-of-fold smoothed target mean of each row's category (n x k): the mean of ``T`` over
    rows of the same category in the *other* folds, shrunk toward the other folds' prior with
    ``smoothing`` pseudo-rows (Micci-Barreca 2001)."""
    n_cat = int(codes.max()) + 1 if len(codes) else 1
    cell = folds * n_cat + codes
    size = n_folds * n_cat
    cnt = np.bincount(cell, minlength=size).reshape(n_folds, n_cat)
    cnt_other = (cnt.sum(axis=0)[None, :] - cnt)[folds, codes]
    fold_n = np.bincount(folds, minlength=n_folds)
    out = np.empty(T.shape)
    for j in range(T.shape[1]):  # one pass per target class, vectorised over rows
        s = np.bincount(cell, weights=T[:, j], minlength=size).reshape(n_folds, n_cat)
        s_other = (s.sum(axis=0)[None, :] - s)[folds, codes]
        fold_sum = np.bincount(folds, weights=T[:, j], minlength=n_folds)
        prior = (fold_sum.sum() - fold_sum) / np.maximum(len(codes) - fold_n, 1)
        out[:, j] = (s_other + smoothing * prior[folds]) / (cnt_other + smoothing)
    return out


def _oof_auc(
    codes: np.ndarray, T: np.ndarray, weights: np.ndarray, folds: np.ndarray, n_folds: int
) -> float:
    enc = oof_target_mean(codes.astype(np.int64), T, folds, n_folds)
    auc = np.array([RankedScores(enc[:, j]).roc_auc(T[:, j])[0, 0] for j in range(T.shape[1])])
    return float(weights @ np.nan_to_num(auc, nan=0.5) / weights.sum())


def quantile_codes(x: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin codes of ``x`` at its quantiles (ties collapse bins); NaN gets its own code."""
    finite = np.isfinite(x)
    if not finite.any():
        return np.zeros(len(x), dtype=np.int64)
    edges = np.unique(np.quantile(x[finite], np.linspace(0, 1, n_bins + 1)[1:-1]))
    codes = np.searchsorted(edges, x, side="right")
    codes[~finite] = len(edges) + 1
    return codes.astype(np.int64)


def single_feature_auc(
    frame: pd.DataFrame,
    y: Any,
    *,
    columns: Sequence[str] | None = None,
    task: str = "classification",
    n_folds: int = 5,
    n_bins: int = 20,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Single-feature AUC of each column, highest first.

    Each row: ``{"column", "kind": "numeric"|"categorical", "auc", "direction"}``; ``direction``
    is "higher"/"lower" (numeric: which values go with the positive class), or "category".
    """
    cols = list(columns) if columns is not None else list(frame.columns)
    T, weights, _ = binary_targets(y, task)
    if len(T) == 0 or T.sum() == 0 or T.sum() == T.size:
        return []
    numeric = [
        c
        for c in cols
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    categorical = [c for c in cols if c not in numeric]
    rows: list[dict[str, Any]] = []
    folds = np.random.default_rng(seed).integers(0, n_folds, size=len(T))
    if numeric:
        values = frame[numeric].to_numpy(dtype=float, na_value=np.nan)
        auc = numeric_auc(values, T)
        two_sided = np.maximum(auc, 1 - auc)
        score = weights @ np.nan_to_num(two_sided, nan=0.5) / weights.sum()
        lean = weights @ np.nan_to_num(auc, nan=0.5) / weights.sum()
        for j, c in enumerate(numeric):
            binned = _oof_auc(quantile_codes(values[:, j], n_bins), T, weights, folds, n_folds)
            rows.append(
                {
                    "column": c,
                    "kind": "numeric",
                    "auc": max(float(score[j]), binned),
                    "rank_auc": float(score[j]),
                    "binned_auc": binned,
                    "direction": ("higher" if lean[j] >= 0.5 else "lower")
                    if score[j] >= binned
                    else "non-monotone",
                }
            )
    for c in categorical:
        codes, _ = pd.factorize(frame[c], use_na_sentinel=False)
        score = _oof_auc(codes, T, weights, folds, n_folds)
        rows.append({"column": c, "kind": "categorical", "auc": score, "direction": "category"})
    rows.sort(key=lambda r: -r["auc"])
    return rows
