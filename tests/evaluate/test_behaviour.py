"""MFT / INV / DIR behavioural tests on small synthetic data with hand-written user models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.errors import ConfigError
from loopml.evaluate.checklist.behaviour import (
    DIR,
    INV,
    MFT,
    BehaviourGate,
    behaviour_test,
    load_cases,
)
from loopml.evaluate.gating.gates import GateContext, run_gates


class ScoreModel:
    """A user's model: logistic score of a, education and (optionally) sex and city."""

    classes_ = np.array([0, 1])

    def __init__(self, edu=0.3, sex=0.0, city=0.0):
        self.w = {"edu": edu, "sex": sex, "city": city}

    def predict_proba(self, X):
        z = (
            X["a"].to_numpy(float)
            + self.w["edu"] * (X["edu"].astype(float) - 12)
            + (self.w["sex"] * (X["sex"] == "F").to_numpy() if "sex" in X else 0)
            + self.w["city"] * (X["city"] == "x").to_numpy()
        )
        p = 1 / (1 + np.exp(-z))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] > 0.5).astype(int)


def _frame(n=800, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "edu": pd.Categorical(
                rng.integers(1, 25, n).astype(str), categories=[str(i) for i in range(1, 25)]
            ),
            "sex": pd.Categorical(rng.choice(["M", "F"], n)),
            "city": pd.Categorical(rng.choice(["x", "y"], n)),
        },
        index=pd.RangeIndex(1000, 1000 + n),
    )


def _ctx(model, X=None, **kw):
    X = _frame() if X is None else X
    y = model.predict(X)
    return GateContext(model=model, X_test=X, y_test=y, sensitive=["sex"], **kw)


def _run(test, ctx, **gate):
    res = BehaviourGate(tests=[test], **gate).run(ctx)
    return res, res.evidence["tests"][0]


def test_mft_from_csv_and_yaml_reports_failing_cases(tmp_path):
    csv = tmp_path / "golden.csv"
    csv.write_text(
        "case,a,edu,sex,city,expected,score_min,score_max\n"
        "clear-yes,3,20,M,y,1,,\n"
        "clear-no,-3,2,F,x,0,,\n"
        "wrong,-3,2,F,x,1,,\n"
        "range,0,12,M,y,,0.4,0.6\n"
    )
    ctx = _ctx(ScoreModel())
    res, t = _run(MFT(cases=str(csv), name="golden"), ctx)
    assert res.verdict == "fail" and t["n"] == 4 and t["n_failed"] == 1
    assert t["failures"][0]["case"] == "wrong" and t["failures"][0]["prediction"] == 0
    yml = tmp_path / "golden.yaml"
    yml.write_text(
        "cases:\n  - {a: 0, edu: '12', sex: M, city: y, score: [0.45, 0.55]}\n"
        "  - {a: 2, edu: '16', sex: F, city: x, expected: 1}\n"
    )
    res, t = _run({"type": "mft", "cases": str(yml)}, ctx)
    assert res.verdict == "pass" and t["n"] == 2
    assert list(load_cases(str(yml)).columns) == [
        "a",
        "edu",
        "sex",
        "city",
        "score_min",
        "score_max",
        "expected",
    ]


def test_mft_bad_cases_are_config_errors(tmp_path):
    ctx = _ctx(ScoreModel())
    with pytest.raises(ConfigError, match=r"lack the model input column\(s\) \['city'\]"):
        MFT(cases=[{"a": 0, "edu": "3", "sex": "M", "expected": 1}]).run(ctx, None, None, 5)
    with pytest.raises(ConfigError, match="never saw"):
        MFT(cases=[{"a": 0, "edu": "99", "sex": "M", "city": "x", "expected": 1}]).run(
            ctx, None, None, 5
        )
    with pytest.raises(ConfigError, match="does not exist"):
        load_cases(str(tmp_path / "nope.csv"))


def test_inv_swap_of_sensitive_attribute_is_a_counterfactual_check():
    res, t = _run(INV(perturbation="swap", name="sex-swap"), _ctx(ScoreModel(sex=1.5)))
    assert res.verdict == "fail" and t["failure_rate"] > 0.1
    f = t["failures"][0]
    assert f["column"] == "sex" and f["to"] in ("M", "F") and f["row"] >= 1000
    assert f["prediction_before"] != f["prediction_after"] and f["before"] != f["after"]
    assert len(t["failures"]) <= 20
    res, t = _run(INV(perturbation="swap"), _ctx(ScoreModel(sex=0.0)))
    assert res.verdict == "pass" and t["n_failed"] == 0 and t["checks"] == 800


def test_inv_noise_and_synonyms():
    ctx = _ctx(ScoreModel(city=2.0))
    _, t = _run(INV(perturbation="noise", columns=["a"], scale=0.01, max_failure_rate=0.05), ctx)
    assert t["verdict"] == "pass" and 0 <= t["failure_rate"] < 0.05
    _, t = _run(INV(perturbation="noise", columns=["a"], scale=1.0), ctx)
    assert t["verdict"] == "fail"
    _, t = _run(INV(perturbation="synonyms", mapping={"city": {"x": "X"}}), ctx)
    assert t["verdict"] == "fail" and t["failure_rate"] > 0.1
    _, t = _run(
        INV(perturbation="synonyms", mapping={"city": {"x": "X"}}), _ctx(ScoreModel(city=0.0))
    )
    assert t["verdict"] == "pass"
    with pytest.raises(ConfigError, match="numeric"):
        _run(INV(perturbation="noise", columns=["city"]), ctx)


def test_dir_passes_monotone_model_and_fails_ignoring_or_reversed_model():
    test = DIR(column="edu", step=2, expect="up", name="edu-up")
    res, t = _run(test, _ctx(ScoreModel(edu=0.3)))
    assert res.verdict == "pass" and t["mean_effect"] > 0 and t["skipped"] > 0
    res, t = _run(test, _ctx(ScoreModel(edu=0.0)))
    assert res.verdict == "fail" and "ignore edu" in res.message and t["n_failed"] == 0
    res, t = _run(test, _ctx(ScoreModel(edu=-0.3)))
    assert res.verdict == "fail" and t["failure_rate"] == 1.0
    assert {"row", "from", "to", "before", "after"} <= set(t["failures"][0])
    assert int(t["failures"][0]["to"]) == int(t["failures"][0]["from"]) + 2
    down = DIR(column="a", step=-0.5, expect="down")
    assert _run(down, _ctx(ScoreModel()))[0].verdict == "pass"


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"type": "INV", "perturbation": "jitter"}, "Valid perturbations: noise, synonyms, swap"),
        ({"type": "CHK"}, "valid types: MFT, INV, DIR"),
        ({"type": "DIR", "column": "edu", "expect": "sideways"}, "'up' or 'down'"),
        ({"type": "DIR", "column": "edu", "stepp": 1}, "valid options"),
        ({"type": "INV", "perturbation": "noise"}, "needs `columns`"),
    ],
)
def test_bad_specs_name_the_option_and_list_valid_values(spec, match):
    with pytest.raises(ConfigError, match=match):
        BehaviourGate(tests=[spec]).validate()


def test_unknown_column_is_reported_by_the_gate_without_crashing():
    ctx = _ctx(ScoreModel())
    [res] = run_gates([BehaviourGate(tests=[{"type": "DIR", "column": "income"}])], ctx)
    assert res.verdict == "fail" and "income" in res.message and "Columns" in res.message


def test_gate_samples_rows_and_combines_tests():
    ctx = _ctx(ScoreModel(sex=1.5), X=_frame(3000, 1))
    res = BehaviourGate(
        tests=[
            {"type": "INV", "perturbation": "swap"},
            {"type": "DIR", "column": "edu", "step": 1},
        ],
        max_rows=500,
        max_failures_shown=3,
    ).run(ctx)
    assert res.verdict == "fail" and res.message.startswith("INV swap:")
    inv, dirt = res.evidence["tests"]
    assert inv["n"] == 500 and len(inv["failures"]) == 3 and dirt["verdict"] == "pass"
    assert behaviour_test({"type": "inv", "perturbation": "swap"}) == INV(perturbation="swap")
    assert DIR(column="edu", step=2).label == "edu +2 -> up"


class ThreeClass:
    """A multiclass user model: class by the sign of a, and 'mid' near zero."""

    classes_ = np.array(["hi", "lo", "mid"])

    def predict(self, X):
        a = X["a"].to_numpy(float)
        return np.where(a > 0.3, "hi", np.where(a < -0.3, "lo", "mid"))

    def predict_proba(self, X):
        return np.eye(3)[pd.Index(self.classes_).get_indexer(self.predict(X))]


def test_multiclass_inv_runs_and_dir_fails_with_a_clear_reason():
    ctx = _ctx(ThreeClass())
    res, t = _run(INV(perturbation="swap"), ctx)
    assert res.verdict == "pass" and t["n_failed"] == 0
    [res] = run_gates([BehaviourGate(tests=[DIR(column="a")])], ctx)
    assert res.verdict == "fail" and "binary classifier or a regressor" in res.message


def test_swap_uses_only_sensitive_columns_the_model_takes():
    X = _frame()
    ctx = GateContext(
        model=ScoreModel(),
        X_test=X.drop(columns=["sex"]),
        y_test=np.zeros(len(X)),
        sensitive=["sex"],
        test_frame=X,
    )
    res, t = _run(INV(perturbation="swap"), ctx)
    assert res.verdict == "insufficient_data" and "model input" in t["note"]
