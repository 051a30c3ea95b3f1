"""Predictions and probabilities from one model pass, equal to the model's own ``predict``.

For the classifiers in :data:`ARGMAX_CLASSIFIERS`, ``predict(X)`` is the class of highest
``predict_proba(X)`` except at a tie: trees, forests and ``CalibratedClassifierCV`` call
``predict_proba`` themselves; the others send one raw score through a monotone link (sigmoid,
softmax) for both, so only rounding at a near-tie can split them. One ``predict_proba`` pass
then gives both outputs (scikit-learn spends most of a small call validating its input, and
tree ensembles run their trees once, not twice); rows whose top two probabilities nearly tie
are re-predicted with ``predict`` so that tie-breaking stays the model's own. Training
(evaluation on the test set) and serving (every batch) both use this.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ARGMAX_CLASSIFIERS = frozenset(
    {
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._logistic.LogisticRegressionCV",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.calibration.CalibratedClassifierCV",
    }
)
NEAR_TIE = 1e-9  # top-two probabilities closer than this: ask predict() for that row


def predicts_argmax(model: Any) -> bool:
    """Whether ``model`` (or a Pipeline's last step) is one of :data:`ARGMAX_CLASSIFIERS`,
    with a ``classes_`` array of at least two classes."""
    final = model
    while isinstance(getattr(final, "steps", None), list) and final.steps:
        final = final.steps[-1][1]
    kind = type(final)
    if f"{kind.__module__}.{kind.__qualname__}" not in ARGMAX_CLASSIFIERS:
        return False
    classes = getattr(model, "classes_", None)
    return isinstance(classes, np.ndarray) and classes.ndim == 1 and len(classes) >= 2


def from_proba(model: Any, X: Any, proba: np.ndarray) -> np.ndarray:
    """``model.predict(X)`` from its ``proba`` (``predict_proba(X)``) for a model where
    :func:`predicts_argmax` holds: the argmax class, and ``predict`` on near-tied rows."""
    classes = np.asarray(model.classes_)
    pred = classes[proba.argmax(axis=1)]
    top2 = np.partition(proba, -2, axis=1)[:, -2:]
    near = np.flatnonzero(~(top2[:, 1] - top2[:, 0] >= NEAR_TIE))  # NaN counts as a tie
    if len(near):
        rows = X.iloc[near] if hasattr(X, "iloc") else X[near]
        pred[near] = np.asarray(model.predict(rows))
    return pred
