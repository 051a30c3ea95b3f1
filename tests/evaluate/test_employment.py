"""Acceptance on the ACS employment data (a 24k-row sample, so the test stays fast): a model
trained with a planted bias against SEX=2 & RAC1P=2 fails the fairness gate with the subgroup
named, and a model ignoring education (SCHL) fails its DIR test; the honest model passes both."""

from __future__ import annotations

import numpy as np
import pytest
from tests._helpers.models import ColumnsOnly
from threadpoolctl import threadpool_limits

from loopml.evaluate.checklist.behaviour import BehaviourGate
from loopml.evaluate.gating.fairness import FairnessGate
from loopml.evaluate.gating.gates import GateContext, overall_verdict, run_gates
from loopml.evaluate.measure.slices import metrics_by_slice

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_planted_bias_and_ignored_feature_fail_their_gates(employment):
    from sklearn.ensemble import HistGradientBoostingClassifier

    df = employment.sample(24000, random_state=1)
    train, test = df.iloc[:16000], df.iloc[16000:]
    feats = [c for c in df.columns if c not in ("employed", "id", "year")]

    def fit(cols, y):
        return HistGradientBoostingClassifier(
            max_iter=60, categorical_features="from_dtype", random_state=0
        ).fit(train[cols], y)

    rng = np.random.default_rng(0)
    y = train["employed"].to_numpy()
    target = ((train["SEX"] == "2") & (train["RAC1P"] == "2")).to_numpy()
    planted = y.copy()
    planted[target & (y == 1) & (rng.random(len(y)) < 0.7)] = 0  # the planted bias
    no_schl = [c for c in feats if c != "SCHL"]
    gates = [
        FairnessGate(thresholds={"equal_opportunity_ratio": 0.8}),
        BehaviourGate(
            max_rows=500,
            tests=[
                {
                    "type": "DIR",
                    "column": "SCHL",
                    "step": 2,
                    "expect": "up",
                    "tolerance": 0.05,
                    "max_failure_rate": 0.1,
                    "name": "education",
                }
            ],
        ),
    ]
    verdicts = {}
    with threadpool_limits(1):  # OpenMP on 2 shared cores is slower than one thread
        models = {
            "honest": fit(feats, y),
            "biased": fit(feats, planted),
            "no_schl": ColumnsOnly(fit(no_schl, y), no_schl),
        }
        for name, model in models.items():
            ctx = GateContext(
                model=model,
                X_test=test[feats],
                y_test=test["employed"],
                sensitive=["SEX", "RAC1P"],
                target="employed",
            )
            verdicts[name] = run_gates(gates, ctx)
    honest, biased, no_edu = verdicts["honest"], verdicts["biased"], verdicts["no_schl"]
    # the honest model is not failed; small intersections may leave the evidence short
    assert honest[0].verdict in ("pass", "insufficient_data") and honest[1].verdict == "pass"
    assert overall_verdict(honest)
    assert biased[0].verdict == "fail"
    assert "true-positive-rate ratio" in biased[0].message
    assert "group SEX=2 & RAC1P=2 (n=" in biased[0].message
    assert (
        biased[0].evidence["checks"]["equal_opportunity_ratio"]["worst_group"] == "SEX=2 & RAC1P=2"
    )
    assert no_edu[1].verdict == "fail" and "ignore SCHL" in no_edu[1].message
    assert not overall_verdict(biased) and not overall_verdict(no_edu)
    # small RAC1P groups are reported, not judged and not 0.0
    small = biased[0].evidence["small_groups"]
    assert small and all(
        g.split(" & ")[1] in {"RAC1P=3", "RAC1P=4", "RAC1P=5", "RAC1P=7"} for g in small
    )
    rows = metrics_by_slice(
        test,
        test["employed"],
        models["honest"].predict(test[feats]),
        sensitive=["SEX", "RAC1P"],
        classes=[0, 1],
    )
    assert {r["slice"] for r in rows if r["insufficient"]} >= set(small)
