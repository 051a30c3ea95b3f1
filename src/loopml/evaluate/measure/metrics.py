"""Metrics of one set of predictions, computed with scikit-learn.

Degenerate inputs never raise: a metric that is not defined (ROC AUC with one class present,
precision with no predicted positives, R² on a constant target ...) is ``None`` and the reason
is in ``result["undefined"][metric]``.

Conventions: in a binary task the positive class is ``classes[1]`` (scikit-learn's
``predict_proba`` column 1); ``positive_rate`` is the share of rows *predicted* positive (the
selection rate) and ``base_rate`` the share *labelled* positive. Multiclass precision, recall
and F1 are macro averages (a class never predicted counts as 0, scikit-learn's
``zero_division=0``); multiclass ROC AUC is macro one-vs-rest.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from loopml.config.gate_options import CLASSIFICATION_METRICS, REGRESSION_METRICS
from loopml.errors import DataError

#: metrics where lower is better; every other metric is higher-is-better
LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss", "mae", "rmse"})


def metric_names(task: str) -> tuple[str, ...]:
    """The metric names a gate may use for ``task``."""
    return REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS


def resolve_classes(y_true: np.ndarray, y_pred: np.ndarray, classes: Any = None) -> np.ndarray:
    """``classes`` as an array, or the sorted labels seen in ``y_true`` and ``y_pred``."""
    if classes is not None:
        return np.asarray(classes)
    return np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]))


def proba_matrix(proba: Any, n_classes: int) -> np.ndarray | None:
    """Probabilities as an ``(n, n_classes)`` matrix; a 1-D binary score becomes ``[1-p, p]``."""
    if proba is None:
        return None
    p = np.asarray(proba, dtype=float)
    if p.ndim == 1:
        if n_classes != 2:
            raise DataError(
                f"A 1-D probability array is only meaningful for a binary task, but there are "
                f"{n_classes} classes. Pass predict_proba's full (n, {n_classes}) matrix."
            )
        return np.column_stack([1.0 - p, p])
    if p.ndim != 2 or p.shape[1] != n_classes:
        raise DataError(
            f"Probabilities have shape {p.shape}, expected (n, {n_classes}) with one column per "
            "class in the order of `classes` (model.classes_)."
        )
    return p


def _check_lengths(n: int, **arrays: Any) -> None:
    for name, a in arrays.items():
        if a is not None and len(a) != n:
            raise DataError(f"{name} has {len(a)} rows but y_true has {n}; they must align.")


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def binary_from_counts(tp: int, fp: int, tn: int, fn: int) -> tuple[dict[str, Any], dict[str, str]]:
    """Accuracy, precision, recall, F1 and rates from confusion counts (the same values as
    scikit-learn's functions, with ``None`` where scikit-learn would divide by zero)."""
    n = tp + fp + tn + fn
    undefined: dict[str, str] = {}
    out: dict[str, Any] = {
        "accuracy": _ratio(tp + tn, n),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "positive_rate": _ratio(tp + fp, n),
        "base_rate": _ratio(tp + fn, n),
    }
    if n == 0:
        for k in out:
            undefined[k] = "no rows"
    else:
        if tp + fp == 0:
            undefined["precision"] = "no row is predicted positive"
        if tp + fn == 0:
            undefined["recall"] = "no row is labelled positive"
        if 2 * tp + fp + fn == 0:
            undefined["f1"] = "no positive labels and no positive predictions"
    return out, undefined


def classification_metrics(
    y_true: Any, y_pred: Any, proba: Any = None, classes: Any = None
) -> dict[str, Any]:
    """Accuracy, ROC AUC, log loss, F1, precision, recall, confusion matrix (nested list, rows
    = true class in ``classes`` order), tp/fp/tn/fn (binary), ``n``, ``positive_rate`` and
    ``base_rate``; undefined metrics are ``None`` with a reason under ``"undefined"``."""
    from sklearn import metrics as skm

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    n = len(y_true)
    _check_lengths(n, y_pred=y_pred, proba=proba)
    labels = resolve_classes(y_true, y_pred, classes)
    k = len(labels)
    p = proba_matrix(proba, k)
    out: dict[str, Any] = {"n": n}
    undefined: dict[str, str] = {}
    cm = skm.confusion_matrix(y_true, y_pred, labels=labels) if n else np.zeros((k, k), int)
    out["confusion_matrix"] = cm.tolist()
    if k == 2:
        tn, fp, fn, tp = (int(v) for v in cm.ravel())
        derived, undefined = binary_from_counts(tp, fp, tn, fn)
        out.update(derived)
        out.update(tp=tp, fp=fp, tn=tn, fn=fn)
        if n:  # scikit-learn itself for the headline numbers
            out["accuracy"] = float(skm.accuracy_score(y_true, y_pred))
            for name, fn_ in (
                ("precision", skm.precision_score),
                ("recall", skm.recall_score),
                ("f1", skm.f1_score),
            ):
                if name not in undefined:
                    out[name] = float(fn_(y_true, y_pred, pos_label=labels[1], zero_division=0))
    else:
        out["accuracy"] = float(skm.accuracy_score(y_true, y_pred)) if n else None
        for name, fn_ in (
            ("precision", skm.precision_score),
            ("recall", skm.recall_score),
            ("f1", skm.f1_score),
        ):
            out[name] = (
                float(fn_(y_true, y_pred, labels=labels, average="macro", zero_division=0))
                if n
                else None
            )
        out["positive_rate"] = out["base_rate"] = None
        undefined["positive_rate"] = undefined["base_rate"] = "only defined for a binary task"
        if not n:
            for name in ("accuracy", "precision", "recall", "f1"):
                undefined[name] = "no rows"
    out["roc_auc"], out["log_loss"] = None, None
    if p is None:
        undefined["roc_auc"] = undefined["log_loss"] = "no probabilities given"
    elif n == 0:
        undefined["roc_auc"] = undefined["log_loss"] = "no rows"
    else:
        out["log_loss"] = float(skm.log_loss(y_true, p, labels=labels))
        present = set(np.unique(y_true).tolist())
        missing = [c for c in labels.tolist() if c not in present]
        if missing:
            undefined["roc_auc"] = (
                f"class(es) {missing} absent from y_true; ROC AUC needs every class present"
            )
        elif k == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y_true == labels[1], p[:, 1]))
        else:
            try:
                out["roc_auc"] = float(
                    skm.roc_auc_score(y_true, p, multi_class="ovr", average="macro", labels=labels)
                )
            except ValueError as exc:
                undefined["roc_auc"] = str(exc)
    out["undefined"] = undefined
    return out


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """MAE, RMSE, R² and ``n`` (scikit-learn); R² is ``None`` for fewer than two rows or a
    constant target."""
    from sklearn import metrics as skm

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    n = len(y_true)
    _check_lengths(n, y_pred=y_pred)
    out: dict[str, Any] = {"n": n, "mae": None, "rmse": None, "r2": None}
    undefined: dict[str, str] = {}
    if n == 0:
        undefined = {m: "no rows" for m in REGRESSION_METRICS}
    else:
        out["mae"] = float(skm.mean_absolute_error(y_true, y_pred))
        out["rmse"] = math.sqrt(float(skm.mean_squared_error(y_true, y_pred)))
        if n < 2:
            undefined["r2"] = "needs at least two rows"
        elif np.all(y_true == y_true[0]):
            undefined["r2"] = "the target is constant in these rows"
        else:
            out["r2"] = float(skm.r2_score(y_true, y_pred))
    out["undefined"] = undefined
    return out
