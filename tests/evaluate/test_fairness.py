"""Fairness numbers against fairlearn's MetricFrame, Wilson against scipy, and the gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_ratio,
    equal_opportunity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest
from sklearn.metrics import precision_score

from loopml.errors import ConfigError
from loopml.evaluate.gating.fairness import FairnessGate, group_fairness
from loopml.evaluate.measure.intervals import wilson_interval

NO_MINIMUM = {
    "min_group_size": 1,
    "min_positives": 1,
    "min_negatives": 1,
    "min_predicted_positives": 1,
}


def _metric_frame(df):
    return MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "precision": lambda a, b: precision_score(a, b, zero_division=0),
        },
        y_true=df["y"],
        y_pred=df["yhat"],
        sensitive_features=df[["race", "sex"]],
    )


def test_group_rates_ratios_and_criteria_equal_fairlearn(make_groups):
    df = make_groups(n=8000, seed=1)
    rep = group_fairness(df, df["y"], df["yhat"], sensitive=["race", "sex"], **NO_MINIMUM)
    mf = _metric_frame(df)
    assert len(rep.groups) == 10
    for g in rep.groups:
        ref = mf.by_group.loc[(g["columns"]["race"], g["columns"]["sex"])]
        for rate in ("selection_rate", "tpr", "fpr", "precision"):
            assert g[rate]["value"] == pytest.approx(ref[rate], abs=1e-9)
    ratio, diff = mf.ratio(), mf.difference()
    for rate in ("selection_rate", "tpr", "fpr", "precision"):
        assert rep.rates[rate]["ratio"] == pytest.approx(ratio[rate], abs=1e-9)
        assert rep.rates[rate]["difference"] == pytest.approx(diff[rate], abs=1e-9)
    sf = df[["race", "sex"]]
    crit = rep.criteria
    assert crit["demographic_parity"]["ratio"] == pytest.approx(
        demographic_parity_ratio(df["y"], df["yhat"], sensitive_features=sf), abs=1e-9
    )
    assert crit["equal_opportunity"]["ratio"] == pytest.approx(
        equal_opportunity_ratio(df["y"], df["yhat"], sensitive_features=sf), abs=1e-9
    )
    assert crit["equalized_odds"]["ratio"] == pytest.approx(
        equalized_odds_ratio(df["y"], df["yhat"], sensitive_features=sf), abs=1e-9
    )
    assert crit["equalized_odds"]["difference"] == pytest.approx(
        equalized_odds_difference(df["y"], df["yhat"], sensitive_features=sf), abs=1e-9
    )
    assert rep.rates["selection_rate"]["worst_group"] == "race=D & sex=F"


def test_tiny_group_is_insufficient_never_zero(make_groups, fixed_context):
    """Guards against fairlearn's behaviour: a 3-row group without positives gives ratio 0.0."""
    df = make_groups(n=3000, seed=2, biased=None)
    tiny = pd.DataFrame(
        {"race": ["Z"] * 3, "sex": ["F"] * 3, "y": [0, 0, 0], "yhat": [0, 0, 0], "score": [0.1] * 3}
    )
    df = pd.concat([df, tiny], ignore_index=True)
    assert (
        demographic_parity_ratio(df["y"], df["yhat"], sensitive_features=df[["race", "sex"]]) == 0.0
    )
    rep = group_fairness(df, df["y"], df["yhat"], sensitive=["race", "sex"])
    z = rep.group("race=Z & sex=F")
    assert z["n"] == 3 and not z["selection_rate"]["sufficient"]
    assert z["tpr"]["value"] is None and "positives=0" in z["tpr"]["reason"]
    assert rep.criteria["demographic_parity"]["ratio"] > 0.8
    ctx = fixed_context(df)
    res = FairnessGate(use_intervals=False).run(ctx)
    assert res.verdict == "pass" and "race=Z & sex=F" in res.message
    assert FairnessGate().run(ctx).verdict != "fail"


def test_all_groups_tiny_gives_insufficient_data(make_groups, fixed_context):
    df = make_groups(n=40, seed=3)
    ctx = fixed_context(df)
    res = FairnessGate().run(ctx)
    assert res.verdict == "insufficient_data"
    assert res.evidence["checks"]["demographic_parity_ratio"]["value"] is None


def test_gate_names_the_worst_subgroup_and_its_numbers(make_groups, fixed_context):
    df = make_groups(n=8000, seed=4, penalty=0.3)
    ctx = fixed_context(df)
    res = FairnessGate().run(ctx)
    assert res.verdict == "fail" and res.blocking
    assert "selection-rate ratio" in res.message and "group race=D & sex=F (n=" in res.message
    check = res.evidence["checks"]["demographic_parity_ratio"]
    assert check["worst_group"] == "race=D & sex=F" and check["value"] < 0.8
    unbiased = make_groups(n=8000, seed=4, biased=None)
    ctx2 = fixed_context(unbiased)
    assert FairnessGate(use_intervals=False).run(ctx2).verdict == "pass"
    # groups of ~800: the ratio 0.92 has the interval [0.78, 1.00], which straddles 0.8
    assert FairnessGate().run(ctx2).verdict == "insufficient_data"
    strict = FairnessGate(thresholds={"equalized_odds_difference": 0.05})
    assert strict.run(ctx).verdict == "fail"


def test_intervals_are_judged_three_way(make_groups, fixed_context):
    """Regression: with use_intervals a ratio of 0.46 against 0.9 passed (its bound was
    capped at 1.0); now a straddling interval is insufficient evidence, warned, not a pass."""
    df = make_groups(n=600, seed=5, penalty=0.12)
    ctx = fixed_context(df)
    point = FairnessGate(thresholds={"demographic_parity_ratio": 0.9}, use_intervals=False).run(ctx)
    bounded = FairnessGate(thresholds={"demographic_parity_ratio": 0.9}).run(ctx)
    assert point.verdict == "fail" and bounded.verdict == "insufficient_data"
    assert not bounded.blocking and "straddles the threshold 0.9" in bounded.message
    check = bounded.evidence["checks"]["demographic_parity_ratio"]
    low, high = check["interval"]
    assert low < check["value"] < 0.9 < high
    strict = FairnessGate(thresholds={"demographic_parity_ratio": 0.9}, block_insufficient=True)
    assert strict.run(ctx).blocking  # configured to block on insufficient evidence
    clear = make_groups(n=20000, seed=5, penalty=0.3)
    ctx_clear = fixed_context(clear)
    assert FairnessGate().run(ctx_clear).verdict == "fail"  # the whole interval is below


def test_a_group_without_false_positives_is_not_a_ratio_of_zero(make_groups, fixed_context):
    """Regression: a group of 51 with zero false positives set the equalized-odds ratio to
    0.0 and failed the gate; its FPR interval reaches well above 0."""
    df = make_groups(n=4000, seed=7, biased=None)
    small = pd.DataFrame(
        {"race": ["Z"] * 51, "sex": ["F"] * 51, "y": [1] * 20 + [0] * 31, "score": 0.5}
    )
    small["yhat"] = small["y"]  # no false positives, every positive found
    df = pd.concat([df, small], ignore_index=True)
    ctx = fixed_context(df)
    gate = FairnessGate(thresholds={"equalized_odds_ratio": 0.8})
    assert gate.run(ctx).verdict == "insufficient_data"
    assert (
        FairnessGate(thresholds={"equalized_odds_ratio": 0.8}, use_intervals=False).run(ctx).verdict
        == "fail"
    )


def test_wilson_matches_scipy():
    k = np.array([0, 1, 5, 17, 50, 99, 100])
    n = np.array([10, 10, 20, 40, 100, 100, 100])
    lo, hi = wilson_interval(k, n, 0.9)
    for i in range(len(k)):
        ci = binomtest(int(k[i]), int(n[i])).proportion_ci(0.9, method="wilson")
        assert lo[i] == pytest.approx(ci.low, abs=1e-12)
        assert hi[i] == pytest.approx(ci.high, abs=1e-12)
    lo, hi = wilson_interval(np.array([0]), np.array([0]))
    assert np.isnan(lo[0]) and np.isnan(hi[0])


@pytest.mark.parametrize(
    "thresholds, word",
    [
        ({"parity": 0.8}, "demographic_parity_ratio"),
        ({"demographic_parity_ratio": 1.5}, "less than or equal to 1"),
        ({}, "valid names"),
    ],
)
def test_bad_thresholds_name_the_key_and_list_valid_names(thresholds, word):
    with pytest.raises(ConfigError) as err:
        FairnessGate(thresholds=thresholds).validate()
    assert word in str(err.value)


def test_sensitive_columns_may_live_outside_the_model_input(make_groups, fixed_context):
    df = make_groups(n=4000, seed=6, penalty=0.3)
    ctx = fixed_context(df, X_test=df[["score"]], test_frame=df)
    res = FairnessGate().run(ctx)
    assert res.verdict == "fail" and "race=D & sex=F" in res.message


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("abc"), st.sampled_from([1, 2, None]), st.booleans(), st.booleans()
        ),
        min_size=1,
        max_size=60,
    ),
    st.randoms(use_true_random=False),
)
def test_group_counts_equal_pandas_groupby_in_any_row_order(rows, rnd):
    df = pd.DataFrame(rows, columns=["g", "h", "y", "yhat"]).astype({"y": int, "yhat": int})
    rep = group_fairness(df, df["y"], df["yhat"], sensitive=["g", "h"], **NO_MINIMUM)
    ref = df.groupby(["g", "h"], dropna=False).agg(
        n=("y", "size"), positives=("y", "sum"), predicted_positives=("yhat", "sum")
    )
    ours = {(g["columns"]["g"], g["columns"]["h"]): g for g in rep.groups}
    assert len(ours) == len(ref)
    for (g, h), r in ref.iterrows():
        key = (g, None if pd.isna(h) else int(h))
        assert (ours[key]["n"], ours[key]["positives"], ours[key]["predicted_positives"]) == (
            r["n"],
            r["positives"],
            r["predicted_positives"],
        )
    order = list(range(len(df)))
    rnd.shuffle(order)
    shuffled = df.iloc[order]
    rep2 = group_fairness(
        shuffled, shuffled["y"], shuffled["yhat"], sensitive=["g", "h"], **NO_MINIMUM
    )
    assert rep2.to_dict() == rep.to_dict()
