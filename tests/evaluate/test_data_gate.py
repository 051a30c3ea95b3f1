"""The data gate: leakage named, schema and quality rules, and the AUC statistics against
scikit-learn oracles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from loopml.errors import ConfigError
from loopml.evaluate.gating.data_gate import DataGate, schema_of
from loopml.evaluate.gating.gate_registry import build_gate, build_gates
from loopml.evaluate.gating.gates import GateContext, run_gates
from loopml.evaluate.gating.leakage import numeric_auc, oof_target_mean, single_feature_auc


def frame(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = (a + rng.normal(0, 1.0, n) > 0).astype(int)
    return pd.DataFrame(
        {
            "a": a,
            "b": b,
            "c": rng.choice(list("pqrs"), n),
            "row_key": [f"k{i}" for i in range(n)],  # a unique id as a category: must not "leak"
            "y": y,
            "id": np.arange(n),
        }
    )


def ctx_for(train: pd.DataFrame, features: list[str], **kw) -> GateContext:
    X = train[["a", "b"]].fillna(0)
    model = LogisticRegression().fit(X, train["y"])
    return GateContext(
        model=model, X_test=X, y_test=train["y"], train=train, target="y", features=features, **kw
    )


def test_clean_data_passes_and_an_id_category_is_not_leakage():
    train = frame()
    res = run_gates([DataGate()], ctx_for(train, ["a", "b", "c", "row_key"]))[0]
    assert res.verdict == "pass", res.message
    auc = {r["column"]: r["auc"] for r in res.evidence["leakage"]}
    assert auc["row_key"] < 0.6  # out-of-fold encoding: a unique id cannot predict anything
    assert 0.6 < auc["a"] < 0.9


@pytest.mark.parametrize("kind", ["numeric", "categorical", "non_monotone"])
def test_a_leaking_column_fails_the_gate_and_is_named(kind):
    train = frame()
    rng = np.random.default_rng(1)
    y = train["y"].to_numpy()
    if kind == "numeric":
        train["outcome_score"] = y * 3.0 + rng.normal(0, 0.3, len(y))
    elif kind == "categorical":
        noisy = np.where(rng.random(len(y)) < 0.005, 1 - y, y)
        train["outcome_score"] = np.where(noisy == 1, "hired", "rejected")
    else:  # the label is |x| > 1: rank AUC ~0.5, the binned target mean sees it
        x = rng.normal(size=len(y)) * 2
        train["outcome_score"] = x
        train["y"] = (np.abs(x) > 1).astype(int)
    res = run_gates([DataGate()], ctx_for(train, ["a", "b", "c", "outcome_score"]))[0]
    assert res.verdict == "fail" and res.blocking
    assert "'outcome_score'" in res.message and "leakage" in res.message
    assert [i["column"] for i in res.evidence["issues"] if i["check"] == "leakage"] == [
        "outcome_score"
    ]


def test_nulls_sentinels_constants_and_duplicates():
    train = frame(2000)
    train.loc[:1200, "b"] = np.nan  # 60% missing
    train.loc[:59, "a"] = 999999.0  # 3% sentinel values
    train["k"] = 7
    dup = pd.concat([train, train.iloc[:400]], ignore_index=True)
    res = run_gates([DataGate(max_duplicate_share=0.1)], ctx_for(dup, ["a", "b", "c", "k"]))[0]
    checks = {(i["check"], i["column"]): i["severity"] for i in res.evidence["issues"]}
    assert checks[("null_rate", "b")] == "fail"
    assert checks[("far_values", "a")] == "fail"
    assert checks[("constant", "k")] == "warn"
    assert checks[("duplicates", None)] == "fail"
    assert res.verdict == "fail"
    # duplicates among what the model learns from (features + label), ids aside
    expected = dup[["a", "b", "c", "k", "y"]].duplicated().mean()
    assert expected >= 400 / 2400
    assert res.evidence["duplicate_share"] == pytest.approx(expected)


def test_the_champions_schema_catches_a_changed_training_set():
    old = frame(1500)
    new = frame(1500, seed=3).drop(columns=["c"])
    res = run_gates([DataGate()], ctx_for(new, ["a", "b"], reference_schema=schema_of(old)))[0]
    assert res.verdict == "fail"
    assert any(
        i["check"] == "schema:missing_column" and i["column"] == "c" for i in res.evidence["issues"]
    )


def test_too_few_rows_is_insufficient_data():
    res = run_gates([DataGate()], ctx_for(frame(200).iloc[:20], ["a", "b"]))[0]
    assert res.verdict == "insufficient_data"


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"gates.data.leakage_auc") as e:
        build_gate("data", {"leakage_auc": 1.5})
    assert e.value.field == "gates.data.leakage_auc"
    with pytest.raises(ConfigError, match=r"gates.data.leak_auc'. Did you mean 'leakage_auc'"):
        build_gate("data", {"leak_auc": 0.9})
    assert [type(g).__name__ for g in build_gates({"data": {}, "labels": {}, "stability": {}})] == [
        "DataGate",
        "LabelGate",
        "StabilityGate",
    ]


def test_numeric_auc_equals_sklearn_with_ties_and_nans():
    rng = np.random.default_rng(5)
    n = 500
    y = rng.integers(0, 2, n)
    X = np.column_stack(
        [
            rng.normal(size=n) + y,
            rng.integers(0, 4, n).astype(float),
            np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
        ]
    )
    got = numeric_auc(X, y[:, None].astype(float))[0]
    filled = np.where(np.isnan(X), np.nanmin(X, axis=0) - 1, X)
    want = [roc_auc_score(y, filled[:, j]) for j in range(3)]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_oof_target_mean_equals_a_plain_loop():
    rng = np.random.default_rng(6)
    n, k = 300, 3
    codes = rng.integers(0, 7, n)
    t = rng.integers(0, 2, n).astype(float)
    folds = rng.integers(0, k, n)
    got = oof_target_mean(codes, t[:, None], folds, k, smoothing=1.0)[:, 0]
    want = np.empty(n)
    for i in range(n):
        other = folds != folds[i]
        prior = t[other].mean()
        same = other & (codes == codes[i])
        want[i] = (t[same].sum() + prior) / (same.sum() + 1)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_multiclass_and_regression_targets_are_scored():
    rng = np.random.default_rng(7)
    n = 900
    x = rng.normal(size=n)
    df = pd.DataFrame({"x": x, "noise": rng.normal(size=n)})
    classes = np.digitize(x, [-0.5, 0.5])
    rows = {r["column"]: r["auc"] for r in single_feature_auc(df, classes)}
    assert rows["x"] > 0.9 and rows["noise"] < 0.6
    rows = {r["column"]: r["auc"] for r in single_feature_auc(df, x * 2.0, task="regression")}
    assert rows["x"] == pytest.approx(1.0)


def _cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


def _judge(train: pd.DataFrame, target: str = "target"):
    feats = [c for c in train.columns if c != target]
    X = train[feats[:3]].fillna(0)
    model = LogisticRegression(max_iter=500).fit(X, train[target])
    ctx = GateContext(
        model=model, X_test=X, y_test=train[target], train=train, target=target, features=feats
    )
    return run_gates([DataGate()], ctx)[0]


def test_a_near_copy_of_the_target_blocks():
    """Regression: a copy of the target with 2% noise (AUC 0.9797) passed without a word."""
    train = _cancer()
    y = train["target"].to_numpy()
    train["outcome"] = np.where(np.random.default_rng(0).random(len(y)) < 0.02, 1 - y, y)
    res = _judge(train)
    assert res.verdict == "fail" and "'outcome'" in res.message
    leak = next(i for i in res.evidence["issues"] if i["column"] == "outcome")
    assert leak["severity"] == "fail" and 0.95 <= leak["value"] < 0.98


def test_strong_features_below_the_block_level_are_named_as_warnings():
    """Regression: a real post-outcome column (AUC 0.887) passed without a word."""
    res = _judge(_cancer())
    assert res.verdict == "pass"  # 'worst perimeter' (0.976) is a real, continuous feature
    warned = {i["column"]: i for i in res.evidence["issues"] if i["check"] == "leakage"}
    assert warned["worst perimeter"]["severity"] == "warn"
    assert (
        "'worst perimeter' 0.975" in res.message
        and "alone predicts" in warned["worst perimeter"]["message"]
    )


def test_auc_is_rounded_down_so_it_never_prints_as_the_limit():
    from loopml.evaluate.gating.data_gate import auc3, pct

    assert auc3(0.9797) == "0.979" and auc3(0.98) == "0.980"
    assert pct(0.005) == "0.5%" and pct(0.5) == "50%"


def test_thirty_percent_missing_is_a_warning():
    """Regression: a feature with 30% missing values got no warning (only the 0.5 block)."""
    train = _cancer()
    train.loc[train.sample(frac=0.3, random_state=0).index, "mean area"] = np.nan
    res = _judge(train)
    assert res.verdict == "pass"
    issue = next(i for i in res.evidence["issues"] if i["check"] == "null_rate")
    assert issue["severity"] == "warn" and issue["column"] == "mean area"
    assert "'mean area' is 30.1% missing (warning above 10%)" in res.message


def test_a_code_with_three_values_is_not_far_values():
    """Regression (Titanic): Pclass 1/2/3 was flagged as 79% far values of the span [2, 2]."""
    from loopml.evaluate.gating.data_gate import far_values

    pclass = pd.Series(np.repeat([1, 2, 3], [216, 184, 491]))
    assert far_values(pclass, 10.0) is None
    with_sentinel = pd.Series(np.r_[np.random.default_rng(0).normal(50, 5, 500), [999999.0] * 3])
    assert far_values(with_sentinel, 10.0)["examples"] == [999999.0]
