"""Shared small data for the evaluate tests: synthetic groups and the employment sample."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def synthetic_groups(
    n: int = 6000, seed: int = 0, biased: tuple[str, str] | None = ("D", "F"), penalty: float = 0.25
) -> pd.DataFrame:
    """race x sex groups with labels and predictions; one subgroup's selection is lowered."""
    rng = np.random.default_rng(seed)
    race = rng.choice(list("ABCDE"), size=n, p=[0.4, 0.2, 0.15, 0.15, 0.1])
    sex = rng.choice(["M", "F"], size=n)
    y = (rng.random(n) < 0.5).astype(int)
    score = np.clip(0.5 * y + 0.25 + rng.normal(0, 0.2, n), 0, 1)
    if biased is not None:
        score = score - penalty * ((race == biased[0]) & (sex == biased[1]))
    yhat = (score > 0.5).astype(int)
    return pd.DataFrame({"race": race, "sex": sex, "y": y, "yhat": yhat, "score": score})


@pytest.fixture
def make_groups():
    """The synthetic race x sex generator (a fixture: tests run with --import-mode=importlib)."""
    return synthetic_groups


class FixedModel:
    """A 'model' whose predictions are given: gates only need predict/predict_proba."""

    classes_ = np.array([0, 1])

    def __init__(self, yhat):
        self.yhat = np.asarray(yhat)

    def predict(self, X):
        return self.yhat[: len(X)]


def groups_context(df: pd.DataFrame, **kw):
    """A gate context over synthetic groups whose model predicts ``df["yhat"]``; the input is
    the sensitive columns race and sex unless ``X_test`` says otherwise."""
    from loopml.evaluate.gating.gates import GateContext

    args = {"X_test": df[["race", "sex"]], "sensitive": ["race", "sex"], "classes": [0, 1], **kw}
    return GateContext(model=FixedModel(df["yhat"]), y_test=df["y"], **args)


@pytest.fixture
def fixed_context():
    """``groups_context``: a gate context whose model's predictions are given."""
    return groups_context


def employment_path() -> Path | None:
    spec = importlib.util.find_spec("nannyml")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets/data/employment_MA_reference.pq"
    return path if path.exists() else None


@pytest.fixture(scope="session")
def employment() -> pd.DataFrame:
    """The ACS employment reference data (MA 2015), leaking columns dropped."""
    path = employment_path()
    if path is None:
        pytest.skip("nannyml 0.13.1 (the employment data) is not installed")
    df = pd.read_parquet(path).drop(columns=["prediction", "predicted_probability"])
    return df
