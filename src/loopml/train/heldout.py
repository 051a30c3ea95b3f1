"""A trained model on the held-out rows: its predictions (and probabilities), the metrics
overall and per slice."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopml.config import Config
from loopml.errors import TrainingError


def predict(model: Any, X: pd.DataFrame, task: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions and (for a classifier) probabilities on ``X``, equal to ``model.predict``;
    one ``predict_proba`` pass where :func:`loopml.evaluate.measure.predictions.predicts_argmax`."""
    from loopml.evaluate.measure.predictions import from_proba, predicts_argmax

    if task != "classification" or not hasattr(model, "predict_proba"):
        return np.asarray(model.predict(X)), None
    proba = np.asarray(model.predict_proba(X), dtype=float)
    if not predicts_argmax(model) or proba.ndim != 2 or proba.shape[1] != len(model.classes_):
        return np.asarray(model.predict(X)), proba
    return from_proba(model, X, proba), proba


def evaluate(
    cfg: Config, model: Any, task: str, features: list[str], test_df: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray | None, list[Any] | None, dict[str, Any], list[dict[str, Any]]]:
    """Predict the held-out rows; the metrics overall and per slice."""
    from loopml.evaluate.measure.metrics import classification_metrics, regression_metrics
    from loopml.evaluate.measure.slices import metrics_by_slice

    X_test, y_test = test_df[features], test_df[cfg.data.target]
    try:
        pred, proba = predict(model, X_test, task)
    except Exception as e:
        why = (str(e).strip().splitlines() or [""])[0][:300]
        raise TrainingError(
            f"The trained model cannot predict the held-out rows: {type(e).__name__}: "
            f"{why} It is given the same columns as in training "
            f"({len(features)}: {', '.join(map(str, features[:10]))}"
            f"{' ...' if len(features) > 10 else ''}) and must predict from them as they "
            "are: put any column selection or preprocessing (imputing NaNs, encoding "
            "strings) inside the returned model, e.g. a scikit-learn Pipeline, or list "
            "the columns it takes in data.features."
        ) from e
    classes = list(getattr(model, "classes_", [])) or None
    if task == "classification":
        metrics = classification_metrics(y_test, pred, proba, classes=classes)
    else:
        metrics = regression_metrics(y_test, pred)
    slices = metrics_by_slice(
        test_df,
        y_test,
        pred,
        proba,
        sensitive=cfg.data.sensitive,
        segments=cfg.data.segments,
        task=task,
        classes=classes,
    )
    return pred, proba, classes, metrics, slices
