"""Stability across seeds: an underspecified model (a deep randomised tree on noisy data) fails,
a stable one (logistic regression) passes; disagreement checked against a plain loop."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier
from tests._helpers.models import fitted_context

from loopml.errors import ConfigError
from loopml.evaluate.gating.gate_registry import build_gate
from loopml.evaluate.gating.gates import GateContext, overall_verdict, run_gates
from loopml.evaluate.gating.stability import StabilityGate, disagreement


def noisy(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 5)), columns=list("abcde"))
    y = (X["a"] + 0.5 * X["b"] + rng.normal(0, 1.0, n) > 0).astype(int)
    return X.assign(y=y, group=rng.choice(["g1", "g2", "g3"], n))


def context(model, train_fn=None) -> GateContext:
    train, test = noisy(1500, 0), noisy(1000, 1)
    return fitted_context(model, train, test, list("abcde"), segments=["group"], train_fn=train_fn)


def test_an_unstable_model_fails_and_a_stable_one_passes():
    tree = run_gates(
        [StabilityGate(seeds=4)], context(DecisionTreeClassifier(max_features=0.5, random_state=0))
    )[0]
    logit = run_gates([StabilityGate(seeds=4)], context(LogisticRegression()))[0]
    assert tree.verdict == "fail" and not tree.blocking, tree.message
    assert "unstable across seeds" in tree.message
    assert tree.evidence["disagreement"]["pairwise_mean"] > 0.1
    assert len(tree.evidence["overall"]) == 4 and tree.evidence["trainings"] == 3
    assert {s["slice"] for s in tree.evidence["stress_slices"]} <= {
        "group=g1",
        "group=g2",
        "group=g3",
    }
    assert logit.verdict == "pass", logit.message
    assert logit.evidence["spread"] == pytest.approx(0, abs=1e-9)
    assert logit.evidence["disagreement"]["any"] == 0
    assert overall_verdict([tree])  # advisory by default


def test_the_users_training_function_gets_each_seed():
    seeds: list[int] = []

    def train_fn(X, y, params, seed=0):
        seeds.append(seed)
        return DecisionTreeClassifier(max_depth=params["depth"], random_state=seed).fit(X, y)

    ctx = context(DecisionTreeClassifier(max_depth=3, random_state=5), train_fn)
    ctx.train_params, ctx.seed = {"depth": 3}, 5
    res = run_gates([StabilityGate(seeds=3)], ctx)[0]
    assert seeds == [6, 7] and res.evidence["seeds"] == [5, 6, 7]


def test_a_model_that_cannot_be_retrained_is_insufficient_data():
    class Opaque:
        classes_ = np.array([0, 1])

        def predict(self, X):
            return (X["a"] > 0).astype(int).to_numpy()

    test = noisy(200, 1)
    ctx = GateContext(
        model=Opaque(),
        X_test=test[list("abcde")],
        y_test=test["y"],
        train=noisy(200, 0),
        target="y",
    )
    assert run_gates([StabilityGate()], ctx)[0].verdict == "insufficient_data"


def test_disagreement_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    preds = rng.integers(0, 2, (4, 50))
    pairs = [np.mean(preds[i] != preds[j]) for i, j in combinations(range(4), 2)]
    anyd = np.mean([len(set(preds[:, r])) > 1 for r in range(50)])
    got = disagreement(preds)
    assert got["pairwise_mean"] == pytest.approx(np.mean(pairs))
    assert got["pairwise_max"] == pytest.approx(max(pairs))
    assert got["any"] == pytest.approx(anyd)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"gates.stability.seeds"):
        build_gate("stability", {"seeds": 1})
    with pytest.raises(ConfigError, match=r"gates.stability.metric' must be 'accuracy'"):
        build_gate("stability", {"metric": "auc"})


def test_the_siblings_train_where_the_engine_map_sends_them():
    """Guards against a gate retraining here when it was given an engine's map, and against
    work that cannot be pickled for a worker."""
    import pickle

    from loopml.types import in_process

    sent = []

    def engine_map(fn, items, *, shared=None):
        sent.extend(items)
        return in_process(fn, sent, shared=pickle.loads(pickle.dumps(shared)))

    ctx = context(DecisionTreeClassifier(max_features=0.5, random_state=0))
    ctx.engine_map = engine_map
    mapped = run_gates([StabilityGate(seeds=3)], ctx)[0]
    here = run_gates(
        [StabilityGate(seeds=3)], context(DecisionTreeClassifier(max_features=0.5, random_state=0))
    )[0]
    assert sent == [1, 2]  # the seeds after the candidate's, in order
    assert mapped.verdict == here.verdict and mapped.message == here.message
    assert mapped.evidence["overall"] == here.evidence["overall"]
    assert mapped.evidence["disagreement"] == here.evidence["disagreement"]
