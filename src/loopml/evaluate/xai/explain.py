"""Per-prediction explanations: Shapley-value attributions of one model output to the user's
original input columns.

The attributions come from the field's libraries, never from hand-written Shapley code:

* ``tree``: ``shap.TreeExplainer`` (Lundberg et al. 2020, "From local explanations to global
  understanding with explainable AI for trees"), exact path-dependent TreeSHAP, for
  scikit-learn's forests, gradient boosting and histogram gradient boosting, and XGBoost;
* ``native``: LightGBM's own ``predict(..., pred_contrib=True)`` (the same TreeSHAP in C++);
* ``linear``: ``shap.LinearExplainer``, exact for a linear model given the background's means;
* ``permutation`` (model-agnostic): ``shap.PermutationExplainer`` over the original columns
  with a background sample (``Budget.background_rows`` rows drawn from the version's stored
  reference profile, see :mod:`loopml.evaluate.xai.background`) and at most ``Budget.max_evals``
  model evaluations per row; additive by construction, approximate in the ordering.

What is glue, and why by hand: choosing the method for a model, putting the rows through a
Pipeline's transform steps, summing encoded columns back to the user's columns
(:mod:`loopml.evaluate.xai.feature_groups`), and checking that an exact method's
``base_value + sum(attributions)`` equals the model's own output to 1e-6 on the first rows it
explains; an exact method that fails the check (a tree with native categorical splits, which
TreeSHAP does not read) is replaced by the model-agnostic one, and the reason is kept.

``shap`` is the ``loopml[explain]`` extra and is imported only when a tree, linear or
model-agnostic explanation is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import ConfigError, DataError
from loopml.evaluate.xai.explainable import (
    LINEAR_MODELS,
    NATIVE_MODELS,
    PROBABILITY_TREES,
    TREE_MODELS,
)
from loopml.evaluate.xai.feature_groups import (
    encoded_sources,
    fast_transform,
    group_matrix,
    split_pipeline,
    transform,
)

METHODS = ("auto", "tree", "native", "linear", "permutation")
EXACT = frozenset({"tree", "native", "linear"})
TOLERANCE = 1e-6


@dataclass(frozen=True)
class Budget:
    """What a model-agnostic explanation may spend: background rows and model evaluations per
    explained row (``None``: shap's default of 500, raised to ``2 * columns + 1`` if needed)."""

    background_rows: int = 100
    max_evals: int | None = None
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"background_rows": self.background_rows, "max_evals": self.max_evals}


@dataclass
class Explanation:
    """Attributions of ``output`` for ``n`` rows: ``values[i] == base_values[i] +
    attributions[i].sum()`` (exactly, up to float rounding, for every method)."""

    output: str
    method: str
    exact: bool
    columns: list[str]
    values: np.ndarray
    base_values: np.ndarray
    attributions: np.ndarray
    notes: list[str] = field(default_factory=list)

    def rows(self, request_ids: Sequence[str | None] | None = None) -> list[dict[str, Any]]:
        """One JSON object per row, as ``POST /explain`` answers them."""
        ids = list(request_ids) if request_ids is not None else [None] * len(self.values)
        return [
            {
                "request_id": ids[i],
                "value": float(self.values[i]),
                "base_value": float(self.base_values[i]),
                "attributions": {
                    c: float(a) for c, a in zip(self.columns, self.attributions[i], strict=True)
                },
            }
            for i in range(len(self.values))
        ]


def _kind(obj: Any) -> str:
    return type(obj).__name__


class Explainer:
    """Explains one fitted model (a Pipeline's transform steps are looked through).

    ``features`` are the model's input columns; ``target_class`` the class whose output is
    explained (default: the positive class of a binary model, else the first class);
    ``background`` rows of the model's input (needed by the linear and model-agnostic
    methods); ``method`` forces one of :data:`METHODS`.
    """

    def __init__(
        self,
        model: Any,
        *,
        features: Sequence[str],
        task: str = "classification",
        target_class: Any = None,
        background: pd.DataFrame | None = None,
        budget: Budget | None = None,
        method: str = "auto",
    ) -> None:
        self.model = model
        self.features = list(features)
        self.task = task
        self.target_class = target_class
        self.background = background
        self.budget = budget or Budget()
        self.method = method
        self.notes_: list[str] = []
        self._ready = False

    # -- set-up -----------------------------------------------------------------------------

    def _setup(self, X: pd.DataFrame) -> None:
        if self.method not in METHODS:
            raise ConfigError(
                f"Unknown explanation method {self.method!r}; valid: {', '.join(METHODS)}.",
                field="method",
            )
        self.steps_, self.final_ = split_pipeline(self.model)
        classes = getattr(self.model, "classes_", None)
        self.classes_ = list(classes) if classes is not None else None
        self.class_index_: int | None = None
        if self.task != "regression" and self.classes_:
            c = self.target_class
            if c is None:
                c = self.classes_[1] if len(self.classes_) == 2 else self.classes_[0]
            matches = [i for i, k in enumerate(self.classes_) if k == c or str(k) == str(c)]
            if not matches:
                raise DataError(
                    f"Class {c!r} is not one of the model's classes {self.classes_}.",
                    field="class",
                )
            self.class_index_ = matches[0]
            self.target_class = self.classes_[matches[0]]
        method = self.method if self.method != "auto" else self._auto()
        self.method_ = method
        if method in EXACT:
            try:
                self._setup_exact(method, X)
                return
            except Exception as exc:
                if self.method != "auto":
                    raise DataError(
                        f"The {method} method cannot explain this model "
                        f"({type(exc).__name__}: {exc}); use method 'auto'.",
                        field="method",
                    ) from exc
                self.notes_.append(
                    f"{method} explanation unavailable ({type(exc).__name__}: {exc}); "
                    "used the model-agnostic method"
                )
        self._setup_permutation()

    def _auto(self) -> str:
        kind = _kind(self.final_)
        if kind in NATIVE_MODELS and "lightgbm" in type(self.final_).__module__:
            return "native"
        if kind in TREE_MODELS:
            return "tree"
        if kind in LINEAR_MODELS and self.background is not None:
            return "linear"
        return "permutation"

    def _setup_exact(self, method: str, X: pd.DataFrame) -> None:
        head = X[self.features].head(2)
        sources = encoded_sources(self.steps_, self.features, head)
        self.group_, self.columns_ = group_matrix(sources, self.features)
        self.encode_ = lambda rows: transform(self.steps_, rows)
        fast = fast_transform(self.steps_, self.features)
        if fast is not None and np.array_equal(fast(head), self.encode_(head), equal_nan=True):
            self.encode_ = fast
        kind, binary = _kind(self.final_), self.classes_ is not None and len(self.classes_) == 2
        if self.task == "regression" or self.classes_ is None:
            self.output_ = "the regression value"
        elif method == "tree" and kind in PROBABILITY_TREES:
            self.output_ = f"probability of class {self.target_class}"
        elif binary:
            self.output_ = f"log-odds of class {self.target_class}"
        else:
            self.output_ = f"raw score (softmax log-odds) of class {self.target_class}"
        if method == "tree":
            import shap

            self.engine_ = shap.TreeExplainer(self.final_)
        elif method == "linear":
            import shap

            if self.background is None:
                raise DataError("a linear explanation needs background rows", field="background")
            bg = transform(self.steps_, self.background[self.features])
            self.engine_ = shap.LinearExplainer(self.final_, shap.maskers.Independent(bg, len(bg)))
        else:
            self.engine_ = None
        self._checked = False

    def _setup_permutation(self) -> None:
        if self.background is None or not len(self.background):
            raise DataError(
                "The model-agnostic explanation needs background rows (the version's reference "
                "profile); re-register the version with 'loopml run'.",
                field="background",
            )
        from loopml.evaluate.xai.coded import CodedModel

        self.method_ = "permutation"
        self.columns_ = list(self.features)
        self.coded_ = CodedModel(self.model, self.features, self.class_index_)
        if self.class_index_ is not None and hasattr(self.model, "predict_proba"):
            self.output_ = f"probability of class {self.target_class}"
        elif self.class_index_ is not None:
            raise DataError(
                "The model has no predict_proba and no exact explanation method; "
                "explanations need a score.",
                field="model",
            )
        else:
            self.output_ = "the regression value"
        bg = self.background[self.features].sample(
            min(self.budget.background_rows, len(self.background)), random_state=self.budget.seed
        )
        self.background_codes_ = self.coded_.learn(bg)

    # -- explaining ---------------------------------------------------------------------------

    @property
    def exact(self) -> bool:
        return self.method_ in EXACT

    def explain(self, X: pd.DataFrame) -> Explanation:
        """Attributions for every row of ``X`` (the model's input columns)."""
        missing = [c for c in self.features if c not in X.columns]
        if missing:
            raise DataError(f"Columns {missing[:5]} are missing from the rows.", field="rows")
        if list(X.columns) != self.features:  # selecting columns costs ~1 ms a call
            X = X[self.features]
        if not self._ready:
            self._setup(X)
            self._ready = True
        if self.method_ == "permutation":
            return self._permutation(X)
        try:
            out = self._exact(X)
        except Exception as exc:
            if self.method != "auto" or self._checked:
                raise
            out = None
            self.notes_.append(f"{self.method_} explanation failed ({type(exc).__name__}: {exc})")
        if not self._checked:
            reason = out is None or self._mismatch(X, out)
            self._checked = True
            if reason:
                if self.method != "auto":
                    raise DataError(f"The {self.method_} explanation is not exact: {reason}.")
                if isinstance(reason, str):
                    self.notes_.append(
                        f"{self.method_} explanation did not match the model ({reason}); "
                        "used the model-agnostic method"
                    )
                self._setup_permutation()
                return self._permutation(X)
        assert out is not None
        return out

    def _pick(self, values: Any, base: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The explained class's slice of a (n, m[, k]) array and its base value."""
        sv = np.asarray(values, dtype=np.float64)
        ev = np.asarray(base, dtype=np.float64).reshape(-1)
        if sv.ndim == 3:
            i = self.class_index_ if self.class_index_ is not None and sv.shape[2] > 1 else 0
            return sv[:, :, i], np.full(n, ev[i] if len(ev) > i else ev[0])
        # one margin for a binary model's positive class: class 0's is its negative
        binary = self.classes_ is not None and len(self.classes_) == 2
        sign = -1.0 if binary and self.class_index_ == 0 else 1.0
        return sign * sv, np.full(n, sign * ev[0])

    def _exact(self, X: pd.DataFrame) -> Explanation:
        Xt = self.encode_(X)
        n = len(X)
        if self.method_ == "native":
            contrib = np.asarray(self._native_contrib(Xt), dtype=np.float64)
            m = Xt.shape[1]
            if contrib.shape[1] > m + 1:  # multiclass: (m + 1) columns per class
                i = self.class_index_ or 0
                contrib = contrib[:, i * (m + 1) : (i + 1) * (m + 1)]
                sign = 1.0
            else:
                sign = -1.0 if self.class_index_ == 0 else 1.0
            sv, base = sign * contrib[:, :m], sign * contrib[:, m]
        else:
            assert self.engine_ is not None
            if self.method_ == "tree":
                sv_raw = self.engine_.shap_values(Xt, check_additivity=False)
            else:
                sv_raw = self.engine_.shap_values(Xt)
            if isinstance(sv_raw, list):  # older shap: one array per class
                sv_raw = np.stack(sv_raw, axis=2)
            sv, base = self._pick(sv_raw, self.engine_.expected_value, n)
        attributions = sv @ self.group_
        return Explanation(
            output=self.output_,
            method=self.method_,
            exact=True,
            columns=self.columns_,
            values=base + attributions.sum(axis=1),
            base_values=base,
            attributions=attributions,
            notes=list(self.notes_),
        )

    def _native_contrib(self, Xt: np.ndarray) -> Any:
        booster = getattr(self.final_, "booster_", self.final_)
        return booster.predict(Xt, pred_contrib=True)

    def model_output(self, X: pd.DataFrame) -> np.ndarray:
        """The model's own value of the explained output (what the attributions add up to)."""
        out = self.output_
        if out.startswith("probability"):
            return np.asarray(self.model.predict_proba(X), dtype=np.float64)[:, self.class_index_]
        if out == "the regression value":
            return np.asarray(self.model.predict(X), dtype=np.float64).reshape(-1)
        Xt = transform(self.steps_, X)
        if self.method_ == "native":
            booster = getattr(self.final_, "booster_", self.final_)
            raw = np.asarray(booster.predict(Xt, raw_score=True), dtype=np.float64)
        else:
            raw = np.asarray(self.final_.decision_function(Xt), dtype=np.float64)
        if raw.ndim == 2:
            return raw[:, self.class_index_ or 0]
        return -raw if self.class_index_ == 0 else raw

    def _mismatch(self, X: pd.DataFrame, out: Explanation) -> str | None:
        try:
            own = self.model_output(X)
        except Exception as exc:
            return f"the model's own output could not be computed ({type(exc).__name__})"
        gap = float(np.max(np.abs(own - out.values))) if len(own) else 0.0
        if not gap <= TOLERANCE * max(1.0, float(np.max(np.abs(own), initial=0.0))):
            return f"attributions add up to within {gap:.2g} of the model's output, not 1e-6"
        return None

    def _permutation(self, X: pd.DataFrame) -> Explanation:
        from loopml.evaluate.xai.coded import permutation_values

        sv, base, budget = permutation_values(
            self.coded_, self.background_codes_, X, self.budget.max_evals, self.budget.seed
        )
        return Explanation(
            output=self.output_,
            method="permutation",
            exact=False,
            columns=self.columns_,
            values=base + sv.sum(axis=1),
            base_values=base,
            attributions=sv,
            notes=[
                *self.notes_,
                f"model-agnostic (shap PermutationExplainer): {len(self.background_codes_)} "
                f"background rows, at most {budget} model evaluations per row",
            ],
        )
