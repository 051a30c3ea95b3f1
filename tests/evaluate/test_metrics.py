"""Metrics and slices against scikit-learn on the same rows; degenerate slices never crash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from loopml.errors import DataError
from loopml.evaluate.measure.metrics import classification_metrics, regression_metrics
from loopml.evaluate.measure.slices import metrics_by_slice


def _binary(n=500, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1)
    return y, (p > 0.5).astype(int), p


def test_binary_metrics_equal_sklearn():
    y, yhat, p = _binary()
    m = classification_metrics(y, yhat, p, classes=[0, 1])
    assert m["accuracy"] == skm.accuracy_score(y, yhat)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, np.c_[1 - p, p]), abs=1e-12)
    assert m["f1"] == pytest.approx(skm.f1_score(y, yhat))
    assert m["precision"] == pytest.approx(skm.precision_score(y, yhat))
    assert m["recall"] == pytest.approx(skm.recall_score(y, yhat))
    tn, fp, fn, tp = skm.confusion_matrix(y, yhat).ravel()
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (tn, fp, fn, tp)
    assert m["confusion_matrix"] == [[tn, fp], [fn, tp]]
    assert m["positive_rate"] == pytest.approx(yhat.mean())
    assert m["n"] == 500 and m["undefined"] == {}


def test_one_class_slice_gives_none_with_reason():
    m = classification_metrics([1, 1, 1], [1, 0, 1], [0.9, 0.2, 0.8], classes=[0, 1])
    assert m["roc_auc"] is None and "absent" in m["undefined"]["roc_auc"]
    assert m["log_loss"] is not None
    m = classification_metrics([0, 0], [0, 0], None, classes=[0, 1])
    assert m["precision"] is None and m["recall"] is None and m["f1"] is None
    assert m["accuracy"] == 1.0 and "predicted positive" in m["undefined"]["precision"]
    m = classification_metrics([], [], None, classes=[0, 1])
    assert m["n"] == 0 and m["accuracy"] is None


def test_multiclass_metrics_equal_sklearn():
    rng = np.random.default_rng(1)
    y = rng.choice(["a", "b", "c"], 300)
    proba = rng.dirichlet([1, 1, 1], 300)
    yhat = np.array(["a", "b", "c"])[proba.argmax(1)]
    m = classification_metrics(y, yhat, proba, classes=["a", "b", "c"])
    assert m["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr", labels=["a", "b", "c"])
    )
    assert m["f1"] == pytest.approx(skm.f1_score(y, yhat, average="macro"))
    assert len(m["confusion_matrix"]) == 3 and m["positive_rate"] is None
    m2 = classification_metrics(
        y[y != "c"], yhat[y != "c"], proba[y != "c"], classes=["a", "b", "c"]
    )
    assert m2["roc_auc"] is None and "'c'" in m2["undefined"]["roc_auc"]


def test_regression_metrics_and_constant_target():
    rng = np.random.default_rng(2)
    y, yhat = rng.normal(size=200), rng.normal(size=200)
    m = regression_metrics(y, yhat)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, yhat))
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, yhat)))
    assert m["r2"] == pytest.approx(skm.r2_score(y, yhat))
    assert regression_metrics([1.0, 1.0], [1.0, 2.0])["r2"] is None


def test_misaligned_inputs_raise_data_error():
    with pytest.raises(DataError, match="rows"):
        classification_metrics([0, 1, 1], [0, 1], classes=[0, 1])


def _frame(n=3000, seed=3):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "sex": rng.choice(["1", "2"], n),
            "race": rng.choice(list("ABCD"), n, p=[0.6, 0.3, 0.095, 0.005]),
            "seg": rng.choice([10, 20, np.nan], n),
        }
    )


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_metrics_by_slice_equal_metrics_on_each_subset(task):
    df = _frame()
    rng = np.random.default_rng(4)
    n = len(df)
    if task == "binary":
        y, yhat, proba = _binary(n, 5)
        classes, kw = [0, 1], {"task": "classification"}
    elif task == "multiclass":
        classes = ["x", "y", "z"]
        y = rng.choice(classes, n)
        proba = rng.dirichlet([1, 1, 1], n)
        yhat = np.array(classes)[proba.argmax(1)]
        kw = {"task": "classification"}
    else:
        y, yhat, proba, classes = rng.normal(size=n), rng.normal(size=n), None, None
        kw = {"task": "regression"}
    rows = metrics_by_slice(
        df,
        y,
        yhat,
        proba,
        sensitive=["sex", "race"],
        segments=["seg"],
        classes=classes,
        min_size=30,
        **kw,
    )
    kinds = [r["kind"] for r in rows]
    assert kinds[0] == "overall" and kinds.count("sensitive") == 6
    assert kinds.count("intersection") == 8 and kinds.count("segment") == 3
    for row in rows:
        mask = np.ones(n, dtype=bool)
        for col, value in row["columns"].items():
            mask &= df[col].isna().to_numpy() if value is None else (df[col] == value).to_numpy()
        assert row["n"] == mask.sum()
        assert row["insufficient"] == (mask.sum() < 30)
        if kw["task"] == "regression":
            ref = regression_metrics(y[mask], yhat[mask])
        else:
            ref = classification_metrics(
                y[mask], yhat[mask], None if proba is None else proba[mask], classes=classes
            )
        for key, value in ref.items():
            if key == "undefined":
                assert set(value) == set(row[key])
            elif isinstance(value, float):
                assert row[key] == pytest.approx(value, abs=1e-9), (row["slice"], key)
            else:
                assert row[key] == value, (row["slice"], key)
    names = {r["slice"] for r in rows}
    assert "sex=2 & race=D" in names and "seg=None" in names


def test_small_slices_are_flagged_not_dropped():
    df = _frame(400, 6)
    y, yhat, p = _binary(400, 7)
    rows = metrics_by_slice(df, y, yhat, p, sensitive=["race"], min_size=30)
    d = [r for r in rows if r["slice"] == "race=D"]
    assert len(d) == 1 and d[0]["insufficient"] and d[0]["n"] < 30
