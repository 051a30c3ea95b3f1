"""Metrics per slice: overall, per value of each sensitive attribute and declared segment, and
per intersection of all sensitive attributes.

Counts come from one ``np.bincount`` per slice family (binary: tp/fp/tn/fn; regression: sums
of errors), log loss from per-row losses summed the same way, ROC AUC from midranks per slice
(:func:`loopml.evaluate.measure.auc.roc_auc`); only a multiclass task calls scikit-learn once per slice. On the
69k-row employment data this is ~25x faster than calling :func:`classification_metrics` per
slice (bench numbers in the report).
Small slices are kept and flagged ``insufficient`` rather than dropped, so a reader sees them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from loopml.errors import ConfigError
from loopml.evaluate.measure.auc import roc_auc
from loopml.evaluate.measure.groups import Groups, group_rows
from loopml.evaluate.measure.metrics import (
    binary_from_counts,
    classification_metrics,
    proba_matrix,
    regression_metrics,
    resolve_classes,
)

DEFAULT_MIN_SLICE_SIZE = 30


def row_log_loss(y_index: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Per-row log loss, clipped exactly as scikit-learn's ``log_loss`` (eps of the dtype)."""
    eps = np.finfo(proba.dtype).eps
    picked = proba[np.arange(len(y_index)), y_index]
    return -np.log(np.clip(picked, eps, 1 - eps))


def _families(
    frame: Any, sensitive: Sequence[str], segments: Sequence[str]
) -> list[tuple[str, Groups]]:
    fams: list[tuple[str, Groups]] = []
    seen: set[str] = set()
    for col in sensitive:
        fams.append(("sensitive", group_rows(frame, [col])))
        seen.add(col)
    if len(sensitive) > 1:
        fams.append(("intersection", group_rows(frame, list(sensitive))))
    for col in segments:
        if col not in seen:
            fams.append(("segment", group_rows(frame, [col])))
            seen.add(col)
    return fams


def _binary_rows(
    groups: Groups,
    yb: np.ndarray,
    pb: np.ndarray,
    p: np.ndarray | None,
    y_true: np.ndarray,
    labels: np.ndarray,
) -> list[dict[str, Any]]:
    g, k = groups.codes, groups.n_groups
    counts = np.bincount(g * 4 + yb * 2 + pb, minlength=4 * k).reshape(k, 4)
    ll_sum = None
    if p is not None:
        ll_sum = np.bincount(g, weights=row_log_loss(yb, p), minlength=k)
    order = np.argsort(g, kind="stable")
    ends = np.cumsum(counts.sum(axis=1))
    rows = []
    for j in range(k):
        tn, fp, fn, tp = (int(v) for v in counts[j])
        n = tn + fp + fn + tp
        out, undefined = binary_from_counts(tp, fp, tn, fn)
        out.update(n=n, tp=tp, fp=fp, tn=tn, fn=fn, confusion_matrix=[[tn, fp], [fn, tp]])
        out["roc_auc"] = out["log_loss"] = None
        if p is None or ll_sum is None:
            undefined["roc_auc"] = undefined["log_loss"] = "no probabilities given"
        else:
            out["log_loss"] = float(ll_sum[j] / n)
            if tp + fn == 0 or tn + fp == 0:
                only = labels[1] if tn + fp == 0 else labels[0]
                undefined["roc_auc"] = f"only one class ({only!r}) present in y_true"
            else:
                idx = order[ends[j] - n : ends[j]]
                out["roc_auc"] = roc_auc(yb[idx], p[idx, 1])
        out["undefined"] = undefined
        rows.append(out)
    return rows


def _regression_rows(groups: Groups, y: np.ndarray, yhat: np.ndarray) -> list[dict[str, Any]]:
    g, k = groups.codes, groups.n_groups
    n = np.bincount(g, minlength=k)
    err = yhat - y
    abs_sum = np.bincount(g, weights=np.abs(err), minlength=k)
    sq_sum = np.bincount(g, weights=err * err, minlength=k)
    mean_y = np.bincount(g, weights=y, minlength=k) / np.maximum(n, 1)
    sst = np.bincount(g, weights=(y - mean_y[g]) ** 2, minlength=k)
    rows = []
    for j in range(k):
        undefined: dict[str, str] = {}
        r2 = None
        if n[j] < 2:
            undefined["r2"] = "needs at least two rows"
        elif sst[j] == 0:
            undefined["r2"] = "the target is constant in these rows"
        else:
            r2 = float(1.0 - sq_sum[j] / sst[j])
        rows.append(
            {
                "n": int(n[j]),
                "mae": float(abs_sum[j] / n[j]),
                "rmse": math.sqrt(sq_sum[j] / n[j]),
                "r2": r2,
                "undefined": undefined,
            }
        )
    return rows


def _multiclass_rows(
    groups: Groups, y: np.ndarray, yhat: np.ndarray, p: np.ndarray | None, labels: np.ndarray
) -> list[dict[str, Any]]:
    order = np.argsort(groups.codes, kind="stable")
    ends = np.cumsum(groups.counts().astype(np.int64))
    rows = []
    for j in range(groups.n_groups):
        idx = order[(ends[j - 1] if j else 0) : ends[j]]
        rows.append(
            classification_metrics(y[idx], yhat[idx], None if p is None else p[idx], classes=labels)
        )
    return rows


def metrics_by_slice(
    frame_or_columns: Any,
    y_true: Any,
    y_pred: Any,
    proba: Any = None,
    *,
    sensitive: Sequence[str] = (),
    segments: Sequence[str] = (),
    task: str = "classification",
    classes: Any = None,
    min_size: int = DEFAULT_MIN_SLICE_SIZE,
) -> list[dict[str, Any]]:
    """Metrics overall, per value of each sensitive column and segment column, and per
    intersection of all sensitive columns.

    ``frame_or_columns`` is a DataFrame (or a mapping of arrays) holding at least the
    ``sensitive`` and ``segments`` columns, aligned row by row with ``y_true``. Each row of the
    result is ``{"slice": "SEX=2 & RAC1P=1", "kind": "overall"|"sensitive"|"intersection"|
    "segment", "columns": {...}, "n": ..., "insufficient": n < min_size, <metrics>}``.
    """
    if task not in ("classification", "regression"):
        raise ConfigError(
            f"task must be 'classification' or 'regression'; got {task!r}.", field="task"
        )
    if min_size < 0:
        raise ConfigError(f"min_size must be >= 0; got {min_size}.", field="min_size")
    y = np.asarray(y_true)
    yhat = np.asarray(y_pred)
    n = len(y)
    overall = Groups(columns=(), codes=np.zeros(n, dtype=np.int64), labels=({},))
    families = [("overall", overall), *_families(frame_or_columns, sensitive, segments)]
    for _, grp in families:
        if len(grp.codes) != n:
            raise ConfigError(f"The slice columns have {len(grp.codes)} rows but y_true has {n}.")
    if task == "regression":
        if len(yhat) != n:
            regression_metrics(y, yhat)  # raises the shared length error
        compute = lambda grp: _regression_rows(grp, y.astype(float), yhat.astype(float))  # noqa: E731
    else:
        labels = resolve_classes(y, yhat, classes)
        p = proba_matrix(proba, len(labels))
        if len(yhat) != n or (p is not None and len(p) != n):
            classification_metrics(y, yhat, p, classes=labels)  # raises the shared length error
        if len(labels) == 2:
            yb = (y == labels[1]).astype(np.int64)
            pb = (yhat == labels[1]).astype(np.int64)
            compute = lambda grp: _binary_rows(grp, yb, pb, p, y, labels)  # noqa: E731
        else:
            compute = lambda grp: _multiclass_rows(grp, y, yhat, p, labels)  # noqa: E731
    result: list[dict[str, Any]] = []
    for kind, grp in families:
        for j, metrics in enumerate(compute(grp)):
            row = {
                "slice": grp.name(j),
                "kind": kind,
                "columns": dict(grp.labels[j]),
                "n": metrics["n"],
                "insufficient": metrics["n"] < min_size,
            }
            row.update(metrics)
            result.append(row)
    return result
