"""Score calibration: an isotonic map from a model's raw P(positive) to the observed rate,
fitted once on held-out predictions at training time and stored with the reference, so that
confidence-based performance estimation (CBPE, as NannyML) starts from calibrated scores."""

from __future__ import annotations

from typing import Any

import numpy as np


def fit_calibration(scores: Any, positive: Any, *, max_points: int = 512) -> dict[str, Any]:
    """Isotonic map from raw score to P(positive), fitted on held-out predictions.

    ``scores``: the model's P(positive) (``_score``) on the test set; ``positive``: booleans,
    True where the label is the positive class. Returns ``{"x": [...], "y": [...], "n": ...}``
    (JSON-able) for :func:`calibrate`.
    """
    from sklearn.isotonic import IsotonicRegression

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=np.float64)
    keep = np.isfinite(s)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s[keep], y[keep])
    x, v = np.asarray(iso.X_thresholds_), np.asarray(iso.y_thresholds_)
    if len(x) > max_points:  # a step function: keep its corners at evenly spaced ranks
        idx = np.unique(np.linspace(0, len(x) - 1, max_points).round().astype(int))
        x, v = x[idx], v[idx]
    return {"method": "isotonic", "x": x.tolist(), "y": v.tolist(), "n": int(keep.sum())}


def calibrate(scores: np.ndarray, calibration: dict[str, Any] | None) -> np.ndarray:
    """Calibrated P(positive) of raw scores (identity without a calibration map)."""
    s = np.asarray(scores, dtype=np.float64)
    if not calibration:
        return np.clip(s, 0.0, 1.0)
    return np.interp(s, np.asarray(calibration["x"]), np.asarray(calibration["y"]))
