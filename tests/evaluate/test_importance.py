"""Permutation importance ranks the informative feature first (and agrees with scikit-learn);
importance_shift reports rank correlation and top-k changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from tests._helpers.models import ColumnsOnly

from loopml.evaluate.xai.importance import importance_shift, permutation_importance_table


def data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=["signal", "weak", "noise1", "noise2"])
    y = (2 * X["signal"] + 0.4 * X["weak"] + rng.normal(0, 0.5, n) > 0).astype(int)
    return X, y


def test_the_informative_feature_ranks_first_and_matches_sklearn():
    X, y = data()
    model = LogisticRegression().fit(X, y)
    table = permutation_importance_table(model, X, y, n_repeats=4, seed=3)
    assert [r["feature"] for r in table[:2]] == ["signal", "weak"]
    assert table[0]["rank"] == 1 and table[0]["scoring"] == "roc_auc"
    ref = permutation_importance(model, X, y, scoring="roc_auc", n_repeats=4, random_state=3)
    by = {r["feature"]: r["importance"] for r in table}
    np.testing.assert_allclose([by[c] for c in X.columns], ref.importances_mean, atol=1e-12)


def test_a_wrapped_model_with_extra_columns_and_a_row_cap():
    X, y = data(3000)
    X["SEX"] = np.random.default_rng(1).choice(["1", "2"], len(X))  # carried, not a feature
    model = ColumnsOnly(
        LogisticRegression().fit(X[["signal", "weak", "noise1", "noise2"]], y),
        ["signal", "weak", "noise1", "noise2"],
    )
    table = permutation_importance_table(
        model, X, y, features=model.columns, max_rows=500, n_repeats=2
    )
    assert table[0]["feature"] == "signal"
    assert {r["feature"] for r in table} == set(model.columns)
    acc = permutation_importance_table(model, X, y, features=model.columns, scoring="accuracy")
    assert acc[0]["feature"] == "signal" and acc[0]["scoring"] == "accuracy"


def test_importance_shift_reports_rank_moves_and_top_k():
    cand = [
        {"feature": f, "importance": v}
        for f, v in [("a", 0.5), ("b", 0.3), ("c", 0.1), ("d", 0.05), ("e", 0.01)]
    ]
    champ = [
        {"feature": f, "importance": v}
        for f, v in [("a", 0.1), ("b", 0.3), ("c", 0.5), ("d", 0.05), ("z", 0.2)]
    ]
    shift = importance_shift(cand, champ, top_k=2)
    common = ["a", "b", "c", "d"]
    want = spearmanr([0.5, 0.3, 0.1, 0.05], [0.1, 0.3, 0.5, 0.05]).statistic
    assert shift["spearman"] == pytest.approx(want)
    assert shift["n_common"] == len(common)
    assert shift["top_candidate"] == ["a", "b"] and shift["top_champion"] == ["c", "b"]
    assert shift["entered_top_k"] == ["a"] and shift["left_top_k"] == ["c"]
    assert shift["only_candidate"] == ["e"] and shift["only_champion"] == ["z"]
    first = shift["rank_changes"][0]
    assert first["feature"] in ("a", "c") and abs(first["change"]) == 3
    same = importance_shift(cand, cand)
    assert same["spearman"] == pytest.approx(1.0) and same["entered_top_k"] == []


def test_rows_a_shuffle_leaves_alone_are_not_repredicted_and_results_match_sklearn():
    # yes/no and mostly-missing columns leave many rows unchanged after a shuffle; those rows
    # keep the unshuffled output, which must not change the numbers. (A forest: scikit-learn
    # scores ROC AUC from decision_function where there is one, loopml from predict_proba.)
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = data(1500, seed=2)
    rng = np.random.default_rng(5)
    X["flag"] = np.where(X["signal"] + rng.normal(0, 1, len(X)) > 0, "yes", "no")
    X["sparse"] = np.where(rng.random(len(X)) < 0.8, np.nan, X["weak"])
    model = Pipeline(
        [
            ("enc", ColumnTransformer([("c", OneHotEncoder(), ["flag"])], remainder="passthrough")),
            ("m", RandomForestClassifier(n_estimators=20, random_state=0)),
        ]
    ).fit(X, y)
    table = permutation_importance_table(model, X, y, n_repeats=3, seed=1)
    ref = permutation_importance(model, X, y, scoring="roc_auc", n_repeats=3, random_state=1)
    by = {r["feature"]: r for r in table}
    np.testing.assert_allclose(
        [by[c]["importance"] for c in X.columns], ref.importances_mean, atol=1e-12
    )
    np.testing.assert_allclose([by[c]["std"] for c in X.columns], ref.importances_std, atol=1e-12)


def test_the_shuffled_copies_are_predicted_where_the_engine_map_sends_them():
    """Guards against importance predicting here when it was given an engine's map."""
    import pickle

    from loopml.evaluate.xai.importance import PARTS
    from loopml.types import in_process

    X, y = data()
    X = X.assign(**{f"extra{i}": X["noise1"] * i for i in range(8)})  # 12 columns, 8 frames
    model = LogisticRegression().fit(X, y)
    frames = []

    def engine_map(fn, items, *, shared=None):
        frames.extend(items)
        return in_process(fn, frames, shared=pickle.loads(pickle.dumps(shared)))

    mapped = permutation_importance_table(model, X, y, n_repeats=2, engine_map=engine_map)
    assert len(frames) == PARTS + 1 and len(frames[0]) == len(X)
    assert mapped == permutation_importance_table(model, X, y, n_repeats=2)


def test_a_constant_column_scores_zero_and_is_not_predicted():
    """Guards against predicting an empty frame (a constant column changes no row)."""
    X, y = data()
    X = X.assign(constant=1.0)
    model = LogisticRegression().fit(X, y)
    table = permutation_importance_table(model, X, y, n_repeats=2)
    assert {r["feature"]: r["importance"] for r in table}["constant"] == 0.0
