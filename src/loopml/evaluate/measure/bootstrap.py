"""Paired bootstrap of a metric difference between two models on the same rows.

Each resample is a vector of row weights (how often each row was drawn), shared by both models
so the comparison is paired. Metrics are written as weighted sums over precomputed per-row
quantities and evaluated for a block of resamples at once as a matrix product (ROC AUC: a
cumulative sum in score order), instead of a scikit-learn call per resample (sklearn
re-validates and re-sorts on every call: about 15 ms per ROC AUC on 69k rows, 15 s for 1000
resamples). Tests check each weighted metric
against scikit-learn on the explicitly resampled rows.

Percentile bootstrap interval: Efron and Tibshirani, "An Introduction to the Bootstrap" (1993),
ch. 13; the paired comparison of a challenger with the serving model is TFX Evaluator's
"blessing" with a change threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from loopml.config.gate_options import (
    COMPARABLE_BINARY,
    COMPARABLE_MULTICLASS,
    COMPARABLE_REGRESSION,
)
from loopml.errors import ConfigError
from loopml.evaluate.measure.auc import RankedScores
from loopml.evaluate.measure.metrics import LOWER_IS_BETTER, proba_matrix

WeightedMetric = Callable[[np.ndarray], np.ndarray]

BINARY_METRICS = COMPARABLE_BINARY
MULTICLASS_METRICS = COMPARABLE_MULTICLASS
REGRESSION_METRICS = COMPARABLE_REGRESSION


def comparable_metrics(task: str, n_classes: int | None) -> tuple[str, ...]:
    """Metrics the paired bootstrap supports for this task."""
    if task == "regression":
        return REGRESSION_METRICS
    return BINARY_METRICS if n_classes == 2 else MULTICLASS_METRICS


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _mean_of(a: np.ndarray) -> WeightedMetric:
    return lambda W: _div(W @ a, W.sum(axis=1))


def weighted_metric(
    metric: str,
    y_true: Any,
    y_pred: Any,
    proba: Any = None,
    *,
    task: str = "classification",
    classes: Any = None,
) -> WeightedMetric:
    """A function ``f(W) -> values`` of ``metric`` on these predictions, where each row of the
    ``(B, n)`` matrix ``W`` holds how many times each row counts in one resample."""
    y = np.asarray(y_true)
    yhat = np.asarray(y_pred)
    if task == "regression":
        yf = y.astype(float)
        e = yhat.astype(float) - yf
        if metric == "mae":
            return _mean_of(np.abs(e))
        if metric == "rmse":
            mse = _mean_of(e * e)
            return lambda W: np.sqrt(mse(W))
        if metric == "r2":
            cols = np.column_stack([e * e, yf, yf * yf])

            def r2(W: np.ndarray) -> np.ndarray:
                sse, sy, sy2 = (W @ cols).T
                sw = W.sum(axis=1)
                sst = sy2 - sy * sy / sw
                return np.where(sst > 1e-12 * np.maximum(sw, 1.0), 1.0 - _div(sse, sst), np.nan)

            return r2
        raise ConfigError(f"Unknown regression metric {metric!r}; valid: {REGRESSION_METRICS}.")
    labels = np.asarray(classes) if classes is not None else np.unique(np.concatenate([y, yhat]))
    if metric == "accuracy":
        return _mean_of((y == yhat).astype(float))
    if metric == "log_loss":
        p = proba_matrix(proba, len(labels))
        if p is None:
            raise ConfigError("log_loss needs predicted probabilities.", field="metric")
        index = pd.Index(labels).get_indexer(y)
        if (index < 0).any():
            raise ConfigError(f"y_true holds labels outside classes {labels.tolist()}.")
        eps = np.finfo(p.dtype).eps
        return _mean_of(-np.log(np.clip(p[np.arange(len(y)), index], eps, 1 - eps)))
    if len(labels) != 2:
        raise ConfigError(
            f"Metric {metric!r} is not supported for a multiclass comparison; "
            f"valid: {MULTICLASS_METRICS}.",
            field="metric",
        )
    yb = (y == labels[1]).astype(float)
    if metric in ("precision", "recall", "f1"):
        pb = (yhat == labels[1]).astype(float)
        cells = np.column_stack([yb * pb, (1 - yb) * pb, yb * (1 - pb)])

        def counts(W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            tp, fp, fn = (W @ cells).T
            return tp, fp, fn

        if metric == "precision":
            return lambda W: _div(counts(W)[0], counts(W)[0] + counts(W)[1])
        if metric == "recall":
            return lambda W: _div(counts(W)[0], counts(W)[0] + counts(W)[2])

        def f1(W: np.ndarray) -> np.ndarray:
            tp, fp, fn = counts(W)
            return _div(2 * tp, 2 * tp + fp + fn)

        return f1
    if metric == "roc_auc":
        p = proba_matrix(proba, 2)
        if p is None:
            raise ConfigError("roc_auc needs predicted probabilities.", field="metric")
        ranked = RankedScores(p[:, 1])  # sorted once for every block of resamples

        def auc(W: np.ndarray) -> np.ndarray:
            return ranked.roc_auc(yb, W.T)[:, 0]  # one weighted AUC per resample (row of W)

        return auc
    raise ConfigError(f"Unknown metric {metric!r}; valid: {BINARY_METRICS}.", field="metric")


def resample_weights(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    """``(b, n)`` matrix: how often each row is drawn in each of ``b`` resamples of ``n``."""
    draws = rng.integers(0, n, (b, n)) + (np.arange(b) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(float)


def paired_bootstrap(
    challenger: WeightedMetric,
    champion: WeightedMetric,
    n: int,
    *,
    metric: str,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    block: int | None = None,
) -> dict[str, Any]:
    """Percentile interval of the improvement of challenger over champion (``challenger -
    champion``, sign flipped for lower-is-better metrics) over ``n_boot`` paired resamples."""
    rng = np.random.default_rng(seed)
    ones = np.ones((1, n))
    chal, champ = float(challenger(ones)[0]), float(champion(ones)[0])
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    block = block or max(1, min(n_boot, 2_000_000 // max(n, 1)))
    diffs = []
    for done in range(0, n_boot, block):
        W = resample_weights(rng, n, min(block, n_boot - done))
        diffs.append(sign * (challenger(W) - champion(W)))
    return interval_summary(metric, chal, champ, sign, np.concatenate(diffs), confidence, n)


def interval_summary(
    metric: str,
    chal: float,
    champ: float,
    sign: float,
    diffs: np.ndarray,
    confidence: float,
    n: int,
) -> dict[str, Any]:
    """The percentile interval of resampled improvements ``diffs`` (already signed so that
    higher is better), as stored in a champion gate's evidence."""
    alpha = 1.0 - confidence
    finite = diffs[np.isfinite(diffs)]
    lo, hi = (
        np.quantile(finite, [alpha / 2, 1 - alpha / 2])
        if len(finite)
        else (float("nan"), float("nan"))
    )
    return {
        "metric": metric,
        "challenger": chal,
        "champion": champ,
        "improvement": sign * (chal - champ),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "confidence": confidence,
        "n_boot": len(diffs),
        "n": n,
        "undefined_resamples": int(len(diffs) - len(finite)),
    }
