"""Label drift and the limits of label-free estimation (issue 11 item 7).

Label drift: once labels arrive, the window's target distribution is compared with the
training target's profile stored with the reference (``stats.drift.column_drift``, the same
rule as for features), and the base rate is stated beside it: the positive class's share for
a binary classifier, the mean label for a regression. A base-rate shift is something no
retrain can fix, so it is reported as what it is rather than as decay.

The estimate's error band: CBPE (``estimation.py``) assumes P(y | x) is as in training. On the
labelled rows of a window it predicts each row correct with probability c (the calibrated
score of the predicted class), so if that assumption holds the realised accuracy of n
labelled rows has mean sum(c) / n and standard deviation sqrt(sum c (1 - c)) / n (a sum of
independent Bernoulli trials; NannyML's CBPE sampling error, Bialek et al.). The band is that
mean +- ``BAND_Z`` standard deviations, widened by ``CALIBRATION_SLACK`` for the calibration
map's own error. A realised accuracy outside the band means the model's confidence no longer
describes its errors (concept shift): the window then withholds the estimate
(``estimated_performance`` is null, ``estimate_status`` is ``"unreliable"``) and says why,
instead of showing a confident number.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from loopml.monitor.performance import Performance, canonical_value
from loopml.stats.calibration import calibrate
from loopml.stats.column import CategoricalProfile, ColumnProfile, NumericProfile

BAND_Z = 3.0  # two-sided ~0.3% false "unreliable" verdicts per window when CBPE holds
CALIBRATION_SLACK = 0.02  # the isotonic map's error on held-out rows, as accuracy


def reference_base_rate(label: ColumnProfile | None, positive: Any, task: str) -> float | None:
    """The training target's base rate: the positive share (classifier) or mean (regression)."""
    if label is None or label.count == 0:
        return None
    if isinstance(label, NumericProfile):
        if task == "regression":
            return float(label.mean)
        if positive is None:
            return None
        try:
            pos = float(positive)
        except (TypeError, ValueError):
            return None
        if label.min >= min(pos, 0.0) and label.max <= max(pos, 1.0) and pos in (0.0, 1.0):
            # a 0/1 target: the mean is the share of ones
            return float(label.mean) if pos == 1.0 else float(1 - label.mean)
        return None
    if isinstance(label, CategoricalProfile) and positive is not None:
        freq = label.frequencies()
        want = {str(positive), canonical_value(positive)}
        hits = sum(
            n for k, n in freq.items() if k in want or k.lower() in {w.lower() for w in want}
        )
        return hits / label.count
    return None


def base_rate(labels: np.ndarray, positive: Any, task: str) -> float | None:
    """The window's base rate from its labels (canonical text for classes)."""
    if len(labels) == 0:
        return None
    if task == "regression":
        y = np.asarray(labels, dtype=np.float64)
        return float(np.nanmean(y)) if np.isfinite(y).any() else None
    if positive is None:
        return None
    return float(np.mean(np.asarray(labels).astype(str) == canonical_value(positive)))


def estimate_check(
    perf: Performance,
    realised_accuracy: float | None,
    calibration: dict[str, Any] | None,
    *,
    binary: bool,
    min_rows: int,
) -> dict[str, Any]:
    """Whether the realised accuracy of the labelled rows lies in CBPE's band for them.

    Returns ``{"status": "ok" | "unreliable" | "unchecked", "expected", "band", "realised",
    "n", "reason"}``.
    """
    n = perf.n_labelled
    if n < min_rows:
        reason = f"{n} labelled rows of {min_rows} needed to check the estimate"
        return {"status": "unchecked", "n": n, "reason": reason}
    if realised_accuracy is None or not perf.parts["score"]:
        reason = "no realised accuracy or scores to check the estimate against"
        return {"status": "unchecked", "n": n, "reason": reason}
    score = np.concatenate(perf.parts["score"])
    pred = np.concatenate(perf.parts["pred"])
    ok = np.isfinite(score)
    if ok.sum() < min_rows:
        return {"status": "unchecked", "n": int(ok.sum()), "reason": "the rows carry no scores"}
    if binary:
        p = calibrate(score[ok], calibration)
        predicted_positive = pred[ok].astype(str) == perf.positive
        c = np.where(predicted_positive, p, 1 - p)
    else:  # the top class probability is the chance the predicted class is right
        c = np.clip(score[ok], 0.0, 1.0)
    m = len(c)
    expected = float(c.mean())
    sd = math.sqrt(float((c * (1 - c)).sum())) / m
    half = BAND_Z * sd + CALIBRATION_SLACK
    inside = abs(realised_accuracy - expected) <= half
    out = {
        "status": "ok" if inside else "unreliable",
        "n": m,
        "expected": expected,
        "band": [expected - half, expected + half],
        "realised": realised_accuracy,
        "z": BAND_Z,
        "calibration_slack": CALIBRATION_SLACK,
    }
    out["reason"] = (
        f"realised accuracy {realised_accuracy:.3f} on {m} labelled rows lies within the "
        f"estimate's band {expected:.3f} +- {half:.3f}"
        if inside
        else f"realised accuracy {realised_accuracy:.3f} on {m} labelled rows lies outside the "
        f"estimate's band {expected:.3f} +- {half:.3f}: the model's confidence no longer "
        "describes its errors (concept shift, P(y | x) changed), so the label-free estimate "
        "is unreliable and is not shown"
    )
    return out
