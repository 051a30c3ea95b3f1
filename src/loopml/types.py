"""Type aliases and small protocols shared across stages."""

from __future__ import annotations

from typing import Any, Literal, Protocol

import numpy as np

Task = Literal["classification", "regression"]
Status = Literal["candidate", "rejected", "shadow", "canary", "champion", "retired", "disabled"]
Role = Literal["viewer", "predictor", "labeller", "deployer", "admin"]
ROLES: tuple[str, ...] = ("viewer", "predictor", "labeller", "deployer", "admin")
Verdict = Literal["pass", "fail", "insufficient_data"]
JSON = dict[str, Any]


class Model(Protocol):
    """What loopml needs of a trained model: scikit-learn's predict (and predict_proba)."""

    def predict(self, X: Any) -> np.ndarray: ...
