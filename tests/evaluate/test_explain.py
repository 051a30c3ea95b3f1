"""Per-row explanations against shap's own numbers (the oracle), additivity against the model's
own output, grouping of encoded columns, and the model-agnostic fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from loopml.evaluate.xai.explain import Budget, Explainer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def employment_model(employment):
    """The employment example's pipeline (one-hot + histogram gradient boosting), small."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    df = employment.sample(5000, random_state=0).reset_index(drop=True)
    feats = [c for c in df.columns if c not in ("employed", "id", "year")]
    X = df[feats].copy()
    cats = [c for c in feats if not pd.api.types.is_numeric_dtype(X[c])]
    for c in cats:
        X[c] = X[c].astype(str)
    enc = ColumnTransformer(
        [("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cats)],
        remainder="passthrough",
    )
    hgb = HistGradientBoostingClassifier(max_iter=40, random_state=0)
    with threadpool_limits(1):
        model = Pipeline([("encode", enc), ("model", hgb)]).fit(X, df["employed"])
    return model, X, cats


def _group_oracle(sv: np.ndarray, model, feats: list[str], cats: list[str]) -> pd.DataFrame:
    """shap's per-encoded-column values summed per original column, from the encoder's own
    category lists (one-hot levels first, in ``cats`` order, then the passed-through columns)."""
    ohe = model.named_steps["encode"].named_transformers_["categories"]
    out, at = {}, 0
    for c, levels in zip(cats, ohe.categories_, strict=True):
        out[c] = sv[:, at : at + len(levels)].sum(axis=1)
        at += len(levels)
    for c in [f for f in feats if f not in cats]:
        out[c] = sv[:, at]
        at += 1
    assert at == sv.shape[1]
    return pd.DataFrame(out)[feats]


def test_tree_attributions_match_shap_and_add_up(employment_model):
    import shap

    model, X, cats = employment_model
    feats = list(X.columns)
    rows = X.iloc[:300]
    with threadpool_limits(1):
        result = Explainer(model, features=feats).explain(rows)
        own = shap.TreeExplainer(model.named_steps["model"])
        sv = own.shap_values(model.named_steps["encode"].transform(rows).astype(float))
    assert result.method == "tree" and result.exact
    assert result.output == "log-odds of class 1"
    assert result.columns == feats  # one-hot levels grouped back to the user's columns
    want = _group_oracle(np.asarray(sv), model, feats, cats)
    np.testing.assert_allclose(result.attributions, want.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(
        result.base_values, float(np.ravel(own.expected_value)[0]), atol=1e-9
    )
    # additivity: value = base + sum = the model's own log-odds, to 1e-6
    np.testing.assert_allclose(
        result.base_values + result.attributions.sum(axis=1), result.values, atol=1e-9
    )
    np.testing.assert_allclose(result.values, model.decision_function(rows), atol=1e-6)
    # the other class's log-odds is the negative
    neg = Explainer(model, features=feats, target_class=0).explain(rows.iloc[:5])
    np.testing.assert_allclose(neg.attributions, -result.attributions[:5], atol=1e-12)
    assert neg.output == "log-odds of class 0"


def test_lightgbm_native_contributions_match_shap():
    import lightgbm as lgb
    import shap

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(800, 5)), columns=[f"x{i}" for i in range(5)])
    y = (X["x0"] - 2 * X["x1"] + rng.normal(0, 0.5, 800) > 0).astype(int)
    model = lgb.LGBMClassifier(n_estimators=30, verbose=-1, n_jobs=1).fit(X, y)
    result = Explainer(model, features=list(X.columns)).explain(X.iloc[:100])
    assert result.method == "native" and result.output == "log-odds of class 1"
    sv = np.asarray(shap.TreeExplainer(model).shap_values(X.iloc[:100].to_numpy()))
    sv = sv[:, :, 1] if sv.ndim == 3 else sv
    np.testing.assert_allclose(result.attributions, sv, atol=1e-6)
    raw = model.predict(X.iloc[:100], raw_score=True)
    np.testing.assert_allclose(result.values, raw, atol=1e-6)


def test_forest_probability_and_regression_outputs():
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(400, 4)), columns=list("abcd"))
    y = (X["a"] > 0).astype(int)
    rf = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
    r = Explainer(rf, features=list(X.columns)).explain(X.iloc[:50])
    assert r.method == "tree" and r.output == "probability of class 1"
    np.testing.assert_allclose(r.values, rf.predict_proba(X.iloc[:50])[:, 1], atol=1e-6)
    assert np.argmax(np.abs(r.attributions).mean(axis=0)) == 0  # 'a' decides
    reg = HistGradientBoostingRegressor(max_iter=20).fit(X, 3 * X["b"] + X["c"])
    r = Explainer(reg, features=list(X.columns), task="regression").explain(X.iloc[:50])
    assert r.output == "the regression value" and r.exact
    np.testing.assert_allclose(r.values, reg.predict(X.iloc[:50]), atol=1e-6)


class Opaque:
    """A user's model that no exact method knows: a hand-written scoring rule."""

    classes_ = np.array([0, 1])

    def predict_proba(self, X):
        z = 1.5 * X["a"].to_numpy() + np.where(X["city"] == "paris", 1.0, -1.0)
        p = 1 / (1 + np.exp(-z))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] > 0.5).astype(int)


def test_model_agnostic_is_additive_within_its_budget():
    rng = np.random.default_rng(2)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=300),
            "b": rng.normal(size=300),
            "city": rng.choice(["paris", "rome"], 300),
        }
    )
    ex = Explainer(Opaque(), features=["a", "b", "city"], background=X, budget=Budget(50, 100))
    r = ex.explain(X.iloc[:20])
    assert r.method == "permutation" and not r.exact
    assert r.output == "probability of class 1"
    np.testing.assert_allclose(r.values, Opaque().predict_proba(X.iloc[:20])[:, 1], atol=1e-9)
    np.testing.assert_allclose(r.base_values + r.attributions.sum(axis=1), r.values, atol=1e-9)
    assert np.allclose(r.attributions[:, 1], 0.0)  # 'b' is ignored by the model
    assert any("50 background rows" in n and "100 model evaluations" in n for n in r.notes)
    with pytest.raises(Exception, match="background"):
        Explainer(Opaque(), features=["a", "b", "city"]).explain(X.iloc[:2])


def test_native_categorical_trees_fall_back_to_the_model_agnostic_method():
    """Regression: TreeSHAP does not read HGB's categorical splits; never return its numbers."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(3)
    X = pd.DataFrame(
        {"a": rng.normal(size=600), "city": pd.Categorical(rng.choice(["p", "q", "r"], 600))}
    )
    y = ((X["city"] == "q") ^ (X["a"] > 0)).astype(int)
    model = HistGradientBoostingClassifier(max_iter=20, categorical_features="from_dtype").fit(X, y)
    r = Explainer(model, features=["a", "city"], background=X).explain(X.iloc[:10])
    np.testing.assert_allclose(r.values, model.predict_proba(X.iloc[:10])[:, 1], atol=1e-9)
    if r.method == "tree":  # a shap that reads categorical splits: then it must be exact
        np.testing.assert_allclose(r.values, model.decision_function(X.iloc[:10]), atol=1e-6)
    else:
        assert r.method == "permutation" and r.notes


def test_encoded_columns_group_back_even_with_underscores_in_names():
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from loopml.evaluate.xai.feature_groups import encoded_sources

    rng = np.random.default_rng(4)
    X = pd.DataFrame(
        {
            "home": rng.choice(["x", "y"], 200),
            "home_city": rng.choice(["u", "v", "w"], 200),
            "n_1": rng.normal(size=200),
        }
    )
    y = rng.integers(0, 2, 200)
    pre = ColumnTransformer(
        [("num", StandardScaler(), ["n_1"]), ("cat", OneHotEncoder(), ["home", "home_city"])]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(X, y)
    sources = encoded_sources([pre], list(X.columns), X.head(2))
    assert sources == ["n_1", "home", "home", "home_city", "home_city", "home_city"]
    r = Explainer(model, features=list(X.columns), background=X).explain(X.iloc[:10])
    assert r.method == "linear" and r.columns == list(X.columns)
    np.testing.assert_allclose(r.values, model.decision_function(X.iloc[:10]), atol=1e-6)


def test_background_is_drawn_from_the_reference_profile():
    from loopml.data.signature import Column, Signature
    from loopml.evaluate.xai.background import draw_background
    from loopml.stats.profile import DatasetProfile

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {"age": rng.integers(18, 90, 5000), "city": rng.choice(["a", "b"], 5000, p=[0.8, 0.2])}
    )
    prof = DatasetProfile.from_frame(frame)
    sig = Signature(
        columns=(
            Column("age", "number", "int64"),
            Column("city", "category", "string", categories=("a", "b")),
        )
    )
    bg = draw_background(prof.columns, sig, n=2000, seed=0)
    assert bg["age"].dtype == np.int64 and bg["age"].between(18, 89).all()
    assert abs(bg["age"].mean() - frame["age"].mean()) < 2.0
    assert abs((bg["city"] == "a").mean() - 0.8) < 0.04


def test_multiclass_explains_the_asked_class():
    from sklearn.datasets import load_iris
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    names = list(X.columns)
    for model in (
        HistGradientBoostingClassifier(max_iter=15).fit(X, y),
        LogisticRegression(max_iter=500).fit(X, y),
    ):
        for cls in (0, 2):
            r = Explainer(model, features=names, target_class=cls, background=X).explain(X)
            assert r.exact and r.output == f"raw score (softmax log-odds) of class {cls}"
            np.testing.assert_allclose(r.values, model.decision_function(X)[:, cls], atol=1e-6)
    with pytest.raises(Exception, match="not one of the model's classes"):
        Explainer(model, features=names, target_class=7).explain(X.iloc[:2])


def test_a_forced_method_that_does_not_fit_the_model_is_a_clear_error():
    from sklearn.linear_model import LogisticRegression

    from loopml.errors import DataError

    X = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3})
    model = LogisticRegression().fit(X, (X["a"] > 20).astype(int))
    with pytest.raises(DataError, match="The tree method cannot explain this model") as err:
        Explainer(model, features=["a", "b"], method="tree").explain(X.iloc[:2])
    assert err.value.field == "method"


def test_fast_one_hot_path_equals_the_pipelines_own_transform(employment_model):
    """Regression: the per-row shortcut must give exactly scikit-learn's encoded rows."""
    from loopml.evaluate.xai.feature_groups import fast_transform, split_pipeline, transform

    model, X, cats = employment_model
    steps, _ = split_pipeline(model)
    fast = fast_transform(steps, list(X.columns))
    assert fast is not None
    rows = X.iloc[:300]
    np.testing.assert_array_equal(fast(rows), transform(steps, rows))
    odd = rows.iloc[:3].copy()
    odd[cats[0]] = "a level never seen"  # unknown: the real transform decides (zeros here)
    np.testing.assert_array_equal(fast(odd), transform(steps, odd))
