"""Label lint: planted flipped labels are found, outliers and imbalance are reported, the
quarantine list holds row ids, and the gate is advisory by default."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.errors import ConfigError
from loopml.evaluate.gating.gate_registry import build_gate
from loopml.evaluate.gating.gates import GateContext, overall_verdict, run_gates
from loopml.evaluate.gating.label_lint import LabelGate, oof_probabilities, quarantine_rows
from loopml.evaluate.gating.refit import fit_function


def data(n: int = 2000, flip: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    y = (2 * X["a"] + X["b"] + rng.normal(0, 0.3, n) > 0).astype(int).to_numpy()
    flipped = rng.random(n) < flip
    y = np.where(flipped, 1 - y, y)
    train = X.assign(label=y, id=np.arange(n) + 10_000)
    return train, flipped


def context(train: pd.DataFrame, **kw) -> GateContext:
    X = train[["a", "b", "c"]]
    model = LogisticRegression().fit(X, train["label"])
    return GateContext(
        model=model,
        X_test=X,
        y_test=train["label"],
        train=train,
        target="label",
        features=["a", "b", "c"],
        **kw,
    )


def test_flipped_labels_are_found_and_quarantined_by_id():
    train, flipped = data()
    res = run_gates([LabelGate()], context(train))[0]
    issues = res.evidence["label_issues"]
    flagged = set(issues["ids"])
    truth = set(train["id"][flipped])
    recall = len(flagged & truth) / len(truth)
    precision = len(flagged & truth) / len(flagged)
    assert recall >= 0.6 and precision >= 0.5, (recall, precision)
    assert res.verdict == "pass"  # ~6% flagged is under the 10% default
    top = issues["suspects"][0]
    assert set(top) == {"id", "label", "p_label", "predicted", "p_predicted"}
    assert top["id"] in truth and top["p_label"] < 0.05 and top["predicted"] != top["label"]
    assert flagged <= set(res.evidence["quarantine"])
    assert res.evidence["id_column"] == "id"
    rows = quarantine_rows(res.to_dict())
    assert {r["id"] for r in rows if r["reason"] == "label"} == flagged


def test_too_many_flagged_rows_fail_but_do_not_block_by_default():
    train, _ = data(flip=0.25, seed=1)
    res = run_gates([LabelGate()], context(train))[0]
    assert res.verdict == "fail" and not res.blocking
    assert "look mislabelled" in res.message
    assert overall_verdict([res])  # advisory: review, never silent dropping
    assert len(train) == 2000


def test_the_users_training_function_is_used_with_seeds():
    train, _ = data(600)
    seen: list[int] = []

    def train_fn(X, y, params, seed=0):
        seen.append(seed)
        return LogisticRegression(C=params["C"]).fit(X, y)

    res = run_gates(
        [LabelGate(n_folds=4)], context(train, train_fn=train_fn, train_params={"C": 0.5}, seed=7)
    )[0]
    assert res.verdict == "pass", res.message
    assert seen == [7, 8, 9, 10]


def test_oof_probabilities_never_score_a_row_with_its_own_model():
    train, _ = data(400)
    X, y = train[["a", "b", "c"]], train["label"].to_numpy()
    ctx = context(train)
    p = oof_probabilities(fit_function(ctx), X, y, np.array([0, 1]), 3, 0)
    assert p.shape == (400, 2) and np.allclose(p.sum(axis=1), 1)
    # a row memorised by a 1-NN model gets p(own label) = 1 in-sample, not out of fold
    from sklearn.neighbors import KNeighborsClassifier

    knn = GateContext(model=KNeighborsClassifier(1).fit(X, y), X_test=X, y_test=y)
    p = oof_probabilities(fit_function(knn), X, y, np.array([0, 1]), 3, 0)
    assert (p[np.arange(400), y] < 1).any()


def test_outliers_and_imbalance_are_reported():
    train, _ = data(3000, flip=0.0, seed=2)
    rng = np.random.default_rng(3)
    train.loc[:29, ["a", "b", "c"]] = rng.normal(0, 10, (30, 3))
    train.loc[:2990, "label"] = 0
    train.loc[2991:, "label"] = 1  # 0.3% minority
    res = run_gates([LabelGate()], context(train))[0]
    assert res.verdict == "fail"
    assert "class 1 is 0.30% of the labels" in res.message
    assert res.evidence["minority_share"] == pytest.approx(9 / 3000)
    out = res.evidence["outliers"]
    planted = set(train["id"][:30])
    assert len(planted & set(out["ids"])) >= 24 and out["n_flagged"] <= 90
    assert out["top"][0]["id"] in planted


def test_a_large_training_set_is_subsampled():
    train, _ = data(2400, seed=4)
    res = run_gates([LabelGate(max_rows=800)], context(train))[0]
    assert res.evidence["n_checked"] == 800 and res.evidence["label_issues"]["n_checked"] == 800
    assert "a random 800 of 2,400 rows" in res.message


def test_regression_lints_outliers_only():
    train, _ = data(500)
    train["label"] = train["a"] * 2.0
    from sklearn.linear_model import LinearRegression

    X = train[["a", "b", "c"]]
    ctx = GateContext(
        model=LinearRegression().fit(X, train["label"]),
        X_test=X,
        y_test=train["label"],
        train=train,
        target="label",
        task="regression",
    )
    res = run_gates([LabelGate()], ctx)[0]
    assert res.verdict == "pass" and "label_issues" not in res.evidence
    assert "only checked for classification" in res.message


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"gates.labels.filter_by' must be 'prune_by_noise_rate'"):
        build_gate("labels", {"filter_by": "magic"})
    with pytest.raises(ConfigError, match=r"gates.labels.n_folds"):
        build_gate("labels", {"n_folds": 1})
    with pytest.raises(ConfigError, match=r"gates.labels.id_column 'row'"):
        train, _ = data(200)
        LabelGate(id_column="row").run(context(train))


def test_without_cleanlab_the_gate_names_the_extra(monkeypatch):
    # cleanlab is the labels extra: a missing one is a configuration failure that says what to
    # install, not a bare ModuleNotFoundError
    monkeypatch.setitem(sys.modules, "cleanlab", None)
    monkeypatch.setitem(sys.modules, "cleanlab.filter", None)
    train, _ = data(n=300)
    res = run_gates([LabelGate()], context(train))[0]
    assert res.verdict == "fail" and "(configuration)" in res.message
    assert "pip install 'loopml[labels]'" in res.message
    assert res.evidence["error_type"] == "UsageError"
