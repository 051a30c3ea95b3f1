"""How gates that retrain (stability, label lint) get the training data and a fit function.

A gate retrains exactly as the pipeline did when the context carries the user's training
function (``ctx.train_fn(X, y, params, seed=...)``); otherwise it clones the candidate with
scikit-learn (``sklearn.base.clone``), setting ``random_state`` when the model has one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import DataError, TrainingError
from loopml.evaluate.gating.gates import GateContext

Fit = Callable[[pd.DataFrame, Any, int], Any]


def model_features(ctx: GateContext) -> list[str]:
    """The model's input columns: ``ctx.features``, the model's ``feature_names_in_``, or
    ``X_test``'s columns, in that order of preference."""
    if ctx.features:
        return list(ctx.features)
    names = getattr(ctx.model, "feature_names_in_", None)
    if names is not None:
        return [str(c) for c in names]
    return list(ctx.X_test.columns)


def training_data(ctx: GateContext, gate: str) -> tuple[pd.DataFrame, np.ndarray]:
    """``(X_train, y_train)`` from ``ctx.train`` and ``ctx.target``; a DataError when absent."""
    if ctx.train is None or ctx.target is None or ctx.target not in ctx.train.columns:
        raise DataError(
            f"The {gate} gate needs the training frame with its target column "
            "(GateContext.train and .target); they were not given.",
            field="train",
        )
    feats = model_features(ctx)
    missing = [c for c in feats if c not in ctx.train.columns]
    if missing:
        raise DataError(
            f"The {gate} gate cannot find the model's input columns {missing[:5]} in the "
            "training frame. Pass GateContext.features with the model's columns.",
            field="features",
        )
    return ctx.train[feats], ctx.train[ctx.target].to_numpy()


@dataclass(frozen=True)
class UserFit:
    """``fit(X, y, seed)`` by the user's training function, as the pipeline trained (picklable,
    so an engine's workers retrain too)."""

    fn: Callable[..., Any]
    params: dict[str, Any]

    def __call__(self, X: pd.DataFrame, y: Any, seed: int) -> Any:
        try:
            takes_seed = "seed" in inspect.signature(self.fn).parameters
        except (TypeError, ValueError):
            takes_seed = False
        kwargs = {"seed": seed} if takes_seed else {}
        try:
            return self.fn(X, pd.Series(y, index=X.index), dict(self.params), **kwargs)
        except Exception as exc:
            raise TrainingError(
                f"Retraining for a gate failed: the training function raised "
                f"{type(exc).__name__}: {exc}."
            ) from exc


@dataclass(frozen=True)
class CloneFit:
    """``fit(X, y, seed)`` by a fresh clone of the candidate, ``random_state`` set to the seed."""

    template: Any  # an unfitted clone

    def __call__(self, X: pd.DataFrame, y: Any, seed: int) -> Any:
        from sklearn.base import clone

        model = clone(self.template)
        params = model.get_params()
        seeded = {k: seed for k in params if k == "random_state" or k.endswith("__random_state")}
        if seeded:
            model.set_params(**seeded)
        return model.fit(X, y)


def fit_function(ctx: GateContext) -> Fit | None:
    """``fit(X, y, seed) -> model`` from ``ctx.train_fn``, else a clone of ``ctx.model``;
    ``None`` when neither is possible (the model is not a scikit-learn estimator)."""
    if ctx.train_fn is not None:
        return UserFit(ctx.train_fn, dict(ctx.train_params))
    try:
        from sklearn.base import clone

        return CloneFit(clone(ctx.model))
    except Exception:
        return None


def aligned_proba(model: Any, X: pd.DataFrame, classes: np.ndarray) -> np.ndarray:
    """``predict_proba`` with one column per entry of ``classes`` (a fold model may not have
    seen every class; its missing columns are 0)."""
    p = np.asarray(model.predict_proba(X), dtype=float)
    own = list(np.asarray(model.classes_))
    out = np.zeros((len(X), len(classes)))
    for j, c in enumerate(classes):
        if c in own:
            out[:, j] = p[:, own.index(c)]
    return out
