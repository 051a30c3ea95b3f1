"""A model seen as a function of a float matrix, for shap's model-agnostic explainers.

shap's maskers mix background and explained rows in one float array; the user's model takes a
DataFrame with text columns. :class:`CodedModel` gives every text value of a column a code
(learned from the background, extended by the explained rows), and decodes the mixed rows
into the model's frame before calling it. Written by hand because it is loopml's glue between
its row format and shap's, not a statistic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


class CodedModel:
    """``f(codes) -> output`` for ``model``: the probability of class ``class_index`` (a
    classifier), else ``predict`` (a regressor)."""

    def __init__(self, model: Any, features: Sequence[str], class_index: int | None) -> None:
        self.model = model
        self.features = list(features)
        self.class_index = class_index
        self.levels_: dict[str, list[Any]] = {}
        self.dtypes_: dict[str, Any] = {}

    def learn(self, background: pd.DataFrame) -> np.ndarray:
        """Learn the text columns' levels and dtypes; the background as codes."""
        for c in self.features:
            col = background[c]
            self.dtypes_[c] = col.dtype
            if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
                self.levels_[c] = list(pd.unique(col.astype(object)))
        return self.encode(background)

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(X), len(self.features)), dtype=np.float64)
        for j, c in enumerate(self.features):
            if c in self.levels_:
                levels = self.levels_[c]
                at = {v: i for i, v in enumerate(levels)}
                codes = []
                for v in X[c].astype(object):
                    if v not in at:
                        at[v] = len(levels)
                        levels.append(v)
                    codes.append(at[v])
                out[:, j] = codes
            else:
                out[:, j] = pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=np.float64)
        return out

    def decode(self, codes: np.ndarray) -> pd.DataFrame:
        cols: dict[str, Any] = {}
        for j, c in enumerate(self.features):
            if c in self.levels_:
                levels = np.array(self.levels_[c], dtype=object)
                cols[c] = levels[codes[:, j].astype(np.int64)]
            else:
                values = codes[:, j]
                kind = np.dtype(self.dtypes_[c]).kind if c in self.dtypes_ else "f"
                if kind in "iu" and np.isfinite(values).all():
                    cols[c] = values.astype(self.dtypes_[c])
                else:
                    cols[c] = values
        frame = pd.DataFrame(cols)
        for c in self.levels_:  # keep the dtype the model was trained on (str, category, bool)
            with contextlib.suppress(TypeError, ValueError):
                frame[c] = frame[c].astype(self.dtypes_[c])
        return frame

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        frame = self.decode(np.asarray(codes, dtype=np.float64).reshape(-1, len(self.features)))
        if self.class_index is not None:
            return np.asarray(self.model.predict_proba(frame), dtype=np.float64)[
                :, self.class_index
            ]
        return np.asarray(self.model.predict(frame), dtype=np.float64).reshape(-1)


def permutation_values(
    coded: CodedModel,
    background: np.ndarray,
    X: pd.DataFrame,
    max_evals: int | None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """shap's ``PermutationExplainer`` on ``coded`` with an ``Independent`` masker over the
    background codes: (attributions, base values, the evaluation budget per row used)."""
    import shap

    k = len(coded.features)
    budget = max(max_evals or 500, 2 * k + 1)
    masker = shap.maskers.Independent(background, len(background))
    engine = shap.PermutationExplainer(coded, masker, seed=seed)
    result = engine(coded.encode(X), max_evals=budget, silent=True)
    sv = np.asarray(result.values, dtype=np.float64).reshape(len(X), k)
    base = np.asarray(result.base_values, dtype=np.float64).reshape(len(X))
    return sv, base, budget
