"""Per-row scores for online judgement, and which one stands for an endpoint's decision metric.

A sequential test judges a mean of per-row numbers, so every decision metric needs a per-row
*proper* score (one the true probabilities minimise) to be judged online:

========================  ====================  =======================================
decision metric           per-row score         why
========================  ====================  =======================================
accuracy, error_rate      error_rate            0/1 loss: its mean is the error rate
log_loss                  log_loss              itself
brier                     brier                 itself
roc_auc, pr_auc, f1, ...  brier                 a ranking/threshold metric has no
                                                per-row form; Brier is the bounded proper
                                                score of the same probabilities
rmse, mse, r2             squared_error         mean squared error (r2 = 1 - mse / var)
mae                       absolute_error        itself
========================  ====================  =======================================

Lower is better for every score; margins are in the score's own units.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

SCORES = ("error_rate", "brier", "log_loss", "squared_error", "absolute_error")
NEEDS_PROBA = ("brier", "log_loss")

_FROM_METRIC = {
    "accuracy": "error_rate",
    "error_rate": "error_rate",
    "balanced_accuracy": "error_rate",
    "log_loss": "log_loss",
    "brier": "brier",
    "rmse": "squared_error",
    "mse": "squared_error",
    "r2": "squared_error",
    "mae": "absolute_error",
}
# non-inferiority margins in the score's units (absolute for classification); for the
# regression scores the default is relative: this share of the champion's mean loss
DEFAULT_MARGIN = {"error_rate": 0.01, "brier": 0.005, "log_loss": 0.02}
RELATIVE_MARGIN = 0.02
_EPS = 1e-15


def score_for(metric: str, task: str, configured: str | None = None) -> str:
    """The per-row score that judges ``metric`` online (``configured`` wins when given)."""
    if configured is not None:
        return configured
    if metric in _FROM_METRIC:
        return _FROM_METRIC[metric]
    return "squared_error" if task == "regression" else "brier"


def default_margin(score: str, champion_mean_loss: float | None = None) -> float:
    if score in DEFAULT_MARGIN:
        return DEFAULT_MARGIN[score]
    base = abs(champion_mean_loss) if champion_mean_loss is not None else 0.0
    return RELATIVE_MARGIN * base


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise equality, numbers as numbers and anything else as text."""
    try:
        return np.asarray(a, dtype=float) == np.asarray(b, dtype=float)
    except (TypeError, ValueError):
        return np.asarray(a).astype(str) == np.asarray(b).astype(str)


def row_loss(
    score: str,
    y: np.ndarray,
    pred: np.ndarray,
    proba: Sequence[Any] | np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
) -> np.ndarray:
    """One loss per row (lower is better). ``proba`` holds one probability vector per row in
    the order of ``classes``; rows without probabilities get NaN for the probability scores."""
    y, pred = np.asarray(y), np.asarray(pred)
    if score == "error_rate":
        return (~_same(pred, y)).astype(float)
    if score in ("squared_error", "absolute_error"):
        e = np.asarray(pred, dtype=float) - np.asarray(y, dtype=float)
        return e * e if score == "squared_error" else np.abs(e)
    if score not in NEEDS_PROBA:
        raise ValueError(f"unknown per-row score {score!r}; one of {', '.join(SCORES)}")
    n = len(y)
    out = np.full(n, np.nan)
    if proba is None or classes is None or not len(classes):
        return out
    keys = [str(c) for c in classes]
    index = {k: i for i, k in enumerate(keys)}
    # the true class's column per row (-1: a label outside the model's classes)
    col = np.array([index.get(str(v), -1) for v in _label_keys(y, classes)])
    ok = np.array([p is not None and len(p) == len(keys) for p in proba], dtype=bool)
    if not ok.any():
        return out
    P = np.array([p for p, good in zip(proba, ok, strict=True) if good], dtype=float)
    j = col[ok]
    onehot = np.zeros_like(P)
    inside = j >= 0
    onehot[np.flatnonzero(inside), j[inside]] = 1.0
    if score == "log_loss":
        p_true = np.where(inside, P[np.arange(len(P)), np.maximum(j, 0)], 0.0)
        out[ok] = -np.log(np.maximum(p_true, _EPS))
    else:  # Brier; for two classes the usual binary form (p - y)^2, half the sum over classes
        out[ok] = np.sum((P - onehot) ** 2, axis=1) / (2.0 if len(keys) == 2 else 1.0)
    return out


def _label_keys(y: np.ndarray, classes: Sequence[Any]) -> list[str]:
    """Labels as the text of the matching class (1.0 and 1 name the same class)."""
    numeric = {}
    for c in classes:
        with contextlib.suppress(TypeError, ValueError):
            numeric[float(c)] = str(c)
    out = []
    for v in y:
        try:
            out.append(numeric.get(float(v), str(v)))
        except (TypeError, ValueError):
            out.append(str(v))
    return out
