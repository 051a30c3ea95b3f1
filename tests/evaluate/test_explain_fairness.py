"""Fairness gaps explained: the planted bias of the gates' employment test (positives of
SEX=2 & RAC1P=2 relabelled 0) is carried by the group's own attributes, and the fairness
gate's evidence says so, with the gap decomposed exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from loopml.evaluate.gating.fairness import FairnessGate
from loopml.evaluate.gating.gates import GateContext, run_gates
from loopml.evaluate.xai.attribution import explain_gaps, gap, group_mask
from loopml.evaluate.xai.explain import Explainer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _pipeline(train, feats, y):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    cats = [c for c in feats if not pd.api.types.is_numeric_dtype(train[c])]
    enc = ColumnTransformer(
        [("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cats)],
        remainder="passthrough",
    )
    model = HistGradientBoostingClassifier(max_iter=60, random_state=0)
    return Pipeline([("encode", enc), ("model", model)]).fit(train[feats], y)


def test_planted_bias_is_explained_by_the_feature_that_carries_it(employment):
    df = employment.sample(24000, random_state=1)
    train, test = df.iloc[:16000], df.iloc[16000:]
    feats = [c for c in df.columns if c not in ("employed", "id", "year")]
    rng = np.random.default_rng(0)
    y = train["employed"].to_numpy()
    target = ((train["SEX"] == "2") & (train["RAC1P"] == "2")).to_numpy()
    planted = y.copy()
    planted[target & (y == 1) & (rng.random(len(y)) < 0.7)] = 0  # as in test_employment.py
    gate = FairnessGate(thresholds={"equal_opportunity_ratio": 0.8})
    with threadpool_limits(1):
        biased, honest = _pipeline(train, feats, planted), _pipeline(train, feats, y)
        ctx = GateContext(
            model=biased,
            X_test=test[feats],
            y_test=test["employed"],
            sensitive=["SEX", "RAC1P"],
            target="employed",
        )
        (result,) = run_gates([gate], ctx)
    assert result.verdict == "fail"
    why = result.evidence["explanation"]["equal_opportunity_ratio"]
    assert why["group"] == "SEX=2 & RAC1P=2" and why["method"] == "tree"
    # the feature carrying the planted bias ranks first, the group's other attribute second
    assert why["top"][:2] == ["RAC1P", "SEX"]
    assert (
        f"Largest part of the score gap between SEX=2 & RAC1P=2 and {why['reference']}: RAC1P"
        in (result.message)
    )
    # exact decomposition: the column differences add up to the gap in mean log-odds
    assert sum(why["attributions"].values()) == pytest.approx(why["gap"], abs=1e-9)
    assert why["gap"] < 0 and why["attributions"]["RAC1P"] < 0
    # the honest model on the same two groups: SEX and RAC1P carry far less of the gap
    with threadpool_limits(1):
        (fair,) = explain_gaps(
            Explainer(honest, features=feats),
            test[feats],
            test,
            [(why["group"], why["reference"])],
        )
    carried = why["attributions"]["RAC1P"] + why["attributions"]["SEX"]
    assert fair["attributions"]["RAC1P"] + fair["attributions"]["SEX"] > carried / 3


def test_gap_decomposition_and_group_masks():
    from loopml.evaluate.xai.explain import Explanation

    frame = pd.DataFrame({"sex": ["1", "2", "2", "1"], "race": [1, 1, 2, 2]})
    assert group_mask(frame, "sex=2 & race=1").tolist() == [False, True, False, False]
    assert group_mask(frame, "nope=1").tolist() == [False] * 4
    result = Explanation(
        output="log-odds of class 1",
        method="tree",
        exact=True,
        columns=["a", "b"],
        values=np.array([1.0, 2.0, 4.0, 0.0]),
        base_values=np.zeros(4),
        attributions=np.array([[1.0, 0.0], [1.0, 1.0], [3.0, 1.0], [0.0, 0.0]]),
    )
    g = gap(
        result, np.array([0, 0, 1, 1], bool), np.array([1, 1, 0, 0], bool), group="x", reference="y"
    )
    assert g["gap"] == pytest.approx(0.5) and g["attributions"] == {"a": 0.5, "b": 0.0}
    assert g["top"][0] == "a"


def test_explanation_never_fails_the_gate_and_can_be_turned_off(make_groups, fixed_context):
    # given predictions, no features to explain: the explanation records why it failed
    df = make_groups(n=4000, seed=3)
    ctx = fixed_context(df, classes=None)
    (r,) = run_gates([FairnessGate()], ctx)
    assert r.verdict == "fail" and "error" in r.evidence["explanation"]
    (r,) = run_gates([FairnessGate(explain=False)], ctx)
    assert r.verdict == "fail" and "explanation" not in r.evidence
    with pytest.raises(Exception, match="explain"):
        FairnessGate(explain="yes").validate()
