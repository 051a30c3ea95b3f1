"""Gate framework, metric thresholds and the paired-bootstrap champion comparison."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from loopml.errors import ConfigError
from loopml.evaluate.gating.gates import (
    Gate,
    GateContext,
    GateResult,
    blocking_failures,
    overall_verdict,
    run_gates,
)
from loopml.evaluate.gating.metric_gates import ChampionGate, MetricGate
from loopml.evaluate.measure.bootstrap import paired_bootstrap, weighted_metric


def _data(n=1500, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "g": rng.choice(["u", "v"], n)}
    )
    y = (X["a"] + 0.5 * X["b"] + rng.normal(scale=noise, size=n) > 0).astype(int).to_numpy()
    return X, y


def _ctx(model, X, y, **kw):
    return GateContext(model=model, X_test=X, y_test=y, sensitive=["g"], **kw)


def _fit(X, y, cols=("a", "b")):
    class Sub(LogisticRegression):
        def fit(self, X, y):
            return super().fit(X[list(cols)], y)

        def predict(self, X):
            return super().predict(X[list(cols)])

        def predict_proba(self, X):
            return super().predict_proba(X[list(cols)])

    return Sub().fit(X, y)


@dataclass(kw_only=True)
class Exploding(Gate):
    name = "exploding"
    blocking: bool = True

    def run(self, ctx):
        raise RuntimeError("boom")


def test_run_gates_turns_an_exception_into_fail_and_keeps_going():
    X, y = _data()
    ctx = _ctx(_fit(X, y), X, y)
    seen = []
    results = run_gates(
        [Exploding(), MetricGate(thresholds={"accuracy": ">= 0.5"})],
        ctx,
        progress=lambda name, i, total, res: seen.append((name, i, total, res is None)),
    )
    assert [r.verdict for r in results] == ["fail", "pass"]
    assert results[0].evidence["error"] == "boom" and "boom" in results[0].message
    assert seen == [
        ("exploding", 0, 2, True),
        ("exploding", 0, 2, False),
        ("metrics", 1, 2, True),
        ("metrics", 1, 2, False),
    ]
    assert not overall_verdict(results) and blocking_failures(results) == [results[0]]
    assert all(r.seconds >= 0 for r in results)


def test_result_round_trip_and_non_blocking_failures():
    r = GateResult(
        "fairness",
        "fail",
        False,
        "msg",
        {"x": np.float64(0.5), "y": [np.int64(2)], "z": float("nan")},
        0.25,
    )
    d = r.to_dict()
    assert d["evidence"] == {"x": 0.5, "y": [2], "z": None}
    assert GateResult.from_dict(d).to_dict() == d
    assert overall_verdict([r, GateResult("m", "insufficient_data", False, "", {})])
    # "not judged" that blocks (a gate told to block on insufficient evidence) stops it
    assert not overall_verdict([r, GateResult("m", "insufficient_data", True, "", {})])
    with pytest.raises(ValueError):
        GateResult.from_dict({**d, "verdict": "maybe"})


def test_gate_params_round_trip():
    g = MetricGate(thresholds={"accuracy": ">= 0.7"}, per_slice=True)
    assert MetricGate(**g.params()) == g


def test_metric_gate_thresholds_overall_and_per_slice():
    X, y = _data()
    ctx = _ctx(_fit(X, y), X, y)
    acc = skm.accuracy_score(y, ctx.predictions)
    ok = MetricGate(thresholds={"accuracy": f">= {acc - 0.01}", "log_loss": "< 5"}).run(ctx)
    assert ok.verdict == "pass"
    bad = MetricGate(thresholds={"accuracy": f">= {acc + 0.01}"}).run(ctx)
    assert bad.verdict == "fail" and "accuracy" in bad.message and "overall" in bad.message
    sliced = MetricGate(thresholds={"accuracy": f">= {acc - 0.001}"}, per_slice=True).run(ctx)
    assert {c["slice"] for c in sliced.evidence["checks"]} == {"overall", "g=u", "g=v"}
    small = MetricGate(thresholds={"accuracy": ">= 0.1"}, min_rows=5000).run(ctx)
    assert small.verdict == "insufficient_data"


@pytest.mark.parametrize(
    "thresholds, match",
    [
        ({"acc": ">= 0.7"}, "must be 'accuracy', 'roc_auc'"),
        ({"accuracy": "at least 0.7"}, "operator and a number"),
        ({"mae": "<= 1"}, "Valid metrics"),
    ],
)
def test_metric_gate_config_errors_name_the_key(thresholds, match):
    with pytest.raises(ConfigError, match=match) as err:
        MetricGate(thresholds=thresholds).validate("classification")
    assert err.value.field.startswith("gates.metrics.")


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy", "log_loss", "f1", "precision", "recall"])
def test_weighted_metric_equals_sklearn_on_resampled_rows(metric):
    rng = np.random.default_rng(1)
    n = 400
    y = rng.integers(0, 2, n)
    p = np.round(np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1), 2)  # ties exercise the AUC
    yhat = (p > 0.5).astype(int)
    f = weighted_metric(metric, y, yhat, p, classes=[0, 1])
    idx = rng.integers(0, n, n)
    w = np.bincount(idx, minlength=n).astype(float)
    ref = {
        "roc_auc": lambda: skm.roc_auc_score(y[idx], p[idx]),
        "accuracy": lambda: skm.accuracy_score(y[idx], yhat[idx]),
        "log_loss": lambda: skm.log_loss(y[idx], np.c_[1 - p[idx], p[idx]], labels=[0, 1]),
        "f1": lambda: skm.f1_score(y[idx], yhat[idx]),
        "precision": lambda: skm.precision_score(y[idx], yhat[idx]),
        "recall": lambda: skm.recall_score(y[idx], yhat[idx]),
    }[metric]()
    assert f(w[None])[0] == pytest.approx(ref, abs=1e-9)
    assert f(np.vstack([w, np.ones(n)]))[1] == pytest.approx(f(np.ones((1, n)))[0])


@pytest.mark.parametrize("metric", ["mae", "rmse", "r2"])
def test_weighted_regression_metric_equals_sklearn(metric):
    rng = np.random.default_rng(2)
    y, yhat = rng.normal(size=300), rng.normal(size=300)
    idx = rng.integers(0, 300, 300)
    w = np.bincount(idx, minlength=300).astype(float)
    ref = {
        "mae": skm.mean_absolute_error,
        "r2": skm.r2_score,
        "rmse": lambda a, b: np.sqrt(skm.mean_squared_error(a, b)),
    }[metric](y[idx], yhat[idx])
    assert weighted_metric(metric, y, yhat, task="regression")(w[None])[0] == pytest.approx(
        ref, abs=1e-9
    )


def test_paired_bootstrap_of_identical_models_is_zero():
    y = np.tile([0, 1], 100)
    p = np.linspace(0, 1, 200)
    f = weighted_metric("roc_auc", y, (p > 0.5).astype(int), p, classes=[0, 1])
    res = paired_bootstrap(f, f, 200, metric="roc_auc", n_boot=100)
    assert res["ci_low"] == res["ci_high"] == 0.0


def test_champion_gate_blesses_equal_and_rejects_worse_challenger():
    X, y = _data(3000, 3, noise=0.5)
    good = _fit(X, y)
    weak = _fit(X, y, cols=("b",))
    assert ChampionGate().run(_ctx(good, X, y)).verdict == "insufficient_data"
    same = ChampionGate(n_boot=200).run(_ctx(good, X, y, champion=good))
    assert same.verdict == "pass"
    res = ChampionGate(n_boot=200).run(_ctx(weak, X, y, champion=good))
    assert res.verdict == "fail" and "roc_auc" in res.message
    held = res.evidence["comparisons"]["held-out"]
    assert held["ci_high"] < -0.01 and held["champion"] > held["challenger"]
    recent = X.assign(target=y).iloc[:500]
    both = ChampionGate(n_boot=200, metric="log_loss").run(
        _ctx(good, X, y, champion=weak, recent=recent, target="target")
    )
    assert both.verdict == "pass" and set(both.evidence["comparisons"]) == {"held-out", "recent"}
    with pytest.raises(ConfigError, match="valid"):
        ChampionGate(metric="mae").validate("classification")


def _delong_bruteforce(y, a, b):
    """O(m n) DeLong from its definition: psi(x, y) = 1 if x > y, 1/2 if tied."""
    y = y.astype(bool)

    def comps(s):
        psi = (s[y][:, None] > s[~y][None, :]) + 0.5 * (s[y][:, None] == s[~y][None, :])
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)

    (aa, v10a, v01a), (ab, v10b, v01b) = comps(a), comps(b)
    s = np.cov([v10a, v10b]) / y.sum() + np.cov([v01a, v01b]) / (~y).sum()
    return aa - ab, s[0, 0] + s[1, 1] - 2 * s[0, 1]


def test_delong_equals_its_definition_and_sklearn_auc():
    from loopml.evaluate.measure.compare import delong_paired

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    a = np.round(0.4 * y + rng.random(300), 1)  # rounded: ties on purpose
    b = np.round(0.2 * y + rng.random(300), 1)
    res = delong_paired(y, a, b, confidence=0.95)
    diff, var = _delong_bruteforce(y, a, b)
    assert res["challenger"] == pytest.approx(skm.roc_auc_score(y, a), abs=1e-12)
    assert res["improvement"] == pytest.approx(diff, abs=1e-12)
    assert res["se"] == pytest.approx(np.sqrt(var), abs=1e-12)
    assert res["ci_low"] == pytest.approx(diff - 1.959963984540054 * np.sqrt(var), abs=1e-9)
    assert delong_paired([1, 0, 0], [0.2, 0.1, 0.3], [0.1, 0.2, 0.3])["ci_low"] is None


@pytest.mark.parametrize("metric", ["accuracy", "precision", "recall", "f1"])
def test_cell_bootstrap_matches_row_bootstrap(metric):
    """The multinomial-over-cells shortcut gives the same interval as resampling rows."""
    from loopml.evaluate.measure.compare import compare_models

    rng = np.random.default_rng(6)
    n = 2000
    y = rng.integers(0, 2, n)
    pa = np.where(rng.random(n) < 0.8, y, 1 - y)
    pb = np.where(rng.random(n) < 0.75, y, 1 - y)
    fast = compare_models(metric, y, (pa, None), (pb, None), classes=[0, 1], n_boot=4000)
    fa = weighted_metric(metric, y, pa, classes=[0, 1])
    fb = weighted_metric(metric, y, pb, classes=[0, 1])
    slow = paired_bootstrap(fa, fb, n, metric=metric, n_boot=4000, seed=1)
    assert fast["improvement"] == pytest.approx(slow["improvement"], abs=1e-12)
    assert fast["ci_low"] == pytest.approx(slow["ci_low"], abs=0.006)
    assert fast["ci_high"] == pytest.approx(slow["ci_high"], abs=0.006)
