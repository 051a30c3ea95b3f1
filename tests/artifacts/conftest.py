"""Small real data and real fitted scikit-learn pipelines shared by the artifact tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


@pytest.fixture(scope="session")
def frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 300
    X = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.lognormal(10, 1, n),
            "region": rng.choice(["north", "south", "east"], n),
        }
    )
    y = ((X["age"] > 40) ^ (X["region"] == "east") ^ (rng.random(n) < 0.1)).to_numpy(int)
    return X, y


def _pipeline(model) -> Pipeline:  # type: ignore[no-untyped-def]
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"]),
        ]
    )
    return Pipeline([("pre", pre), ("model", model)])


@pytest.fixture(scope="session")
def pipelines(frame) -> dict[str, Pipeline]:  # type: ignore[no-untyped-def]
    X, y = frame
    models = {
        "hgb": HistGradientBoostingClassifier(max_iter=10, random_state=0),
        "logreg": LogisticRegression(),
        "forest": RandomForestClassifier(n_estimators=5, random_state=0),
    }
    return {k: _pipeline(m).fit(X, y) for k, m in models.items()}
