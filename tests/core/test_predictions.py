"""The run's test-set predictions: one predict_proba pass for argmax classifiers, and still
exactly what ``model.predict`` returns."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from loopml.evaluate.measure.predictions import predicts_argmax
from loopml.train.heldout import predict


def _data(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {"age": rng.integers(16, 90, n), "sex": rng.choice(["1", "2"], n), "x": rng.normal(size=n)}
    )
    y = (X["age"].between(25, 60) & (rng.random(n) < 0.8)) | (X["x"] > 1.5)
    return X, y.to_numpy()


def test_hist_gradient_boosting_pipeline_outputs_equal_predict_and_predict_proba():
    X, y = _data()
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(sparse_output=False), ["sex"])], remainder="passthrough"
    )
    model = Pipeline(
        [("encode", encode), ("model", HistGradientBoostingClassifier(max_iter=30))]
    ).fit(X, y)
    assert predicts_argmax(model)
    pred, proba = predict(model, X, "classification")
    assert pred.dtype == model.predict(X).dtype
    np.testing.assert_array_equal(pred, model.predict(X))
    np.testing.assert_array_equal(proba, model.predict_proba(X))


def test_near_ties_take_the_models_own_predict():
    # Regression: argmax(predict_proba) alone says class 0 where predict() says class 1
    # (decision 1e-20 > 0, but its sigmoid rounds to exactly 0.5).
    X, y = _data(200)
    model = LogisticRegression().fit(X[["age", "x"]], y)
    model.coef_[:] = 0.0
    model.intercept_[:] = 1e-20
    pred, proba = predict(model, X[["age", "x"]], "classification")
    assert (proba[:, 1] == 0.5).all() and model.predict(X[["age", "x"]]).all()
    np.testing.assert_array_equal(pred, model.predict(X[["age", "x"]]))


class Stubborn:
    """A user's classifier whose predict() is not the argmax of its predict_proba()."""

    classes_ = np.array([0, 1])

    def predict(self, X):
        return np.ones(len(X), dtype=int)

    def predict_proba(self, X):
        return np.tile([0.9, 0.1], (len(X), 1))


def test_other_models_get_both_calls_and_regression_no_probabilities():
    X, _ = _data(100)
    assert not predicts_argmax(Stubborn())
    pred, proba = predict(Stubborn(), X, "classification")
    assert (pred == 1).all() and proba.shape == (100, 2)
    reg = LinearRegression().fit(X[["age"]], X["x"])
    pred, proba = predict(reg, X[["age"]], "regression")
    assert proba is None
    np.testing.assert_array_equal(pred, reg.predict(X[["age"]]))
