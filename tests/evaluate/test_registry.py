"""The gates: section of loopml.yaml mapped onto gate objects, with errors naming the key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import loopml.evaluate as ev
from loopml.errors import ConfigError
from loopml.evaluate.gating.gate_registry import GATE_TYPES, build_gates, register_gate
from loopml.evaluate.gating.gates import Gate, GateContext, run_gates


def test_fairness_runs_by_default_when_sensitive_is_declared():
    gates = build_gates(None, sensitive=["SEX"])
    assert [g.name for g in gates] == ["fairness"]
    assert gates[0].thresholds == {"demographic_parity_ratio": 0.8}
    assert build_gates(None) == []
    assert build_gates({"fairness": {"enabled": False}}, sensitive=["SEX"]) == []


def test_sections_build_gates_in_a_fixed_order():
    gates = build_gates(
        {
            "champion": {"delta": 0.02},
            "metrics": {"accuracy": ">= 0.7"},
            "behaviour": {"tests": [{"type": "INV", "perturbation": "swap"}]},
        },
        sensitive=["SEX"],
    )
    assert [g.name for g in gates] == ["metrics", "fairness", "behaviour", "champion"]
    assert gates[0] == ev.MetricGate(thresholds={"accuracy": ">= 0.7"})
    assert gates[3].delta == 0.02


@pytest.mark.parametrize(
    "section, match",
    [
        ({"fairnes": {}}, "Valid gates: metrics, fairness, behaviour, champion"),
        ({"champion": {"delt": 0.1}}, "Did you mean 'delta'"),
        ({"metrics": {"accuracy": ">= x"}}, "operator and a number"),
        ({"metrics": "accuracy"}, "must be a mapping"),
        ({"fairness": {"thresholds": {"dp": 0.8}}}, "demographic_parity_ratio"),
    ],
)
def test_errors_name_the_key_and_list_valid_values(section, match):
    with pytest.raises(ConfigError, match=match):
        build_gates(section)


def test_lazy_package_exports():
    assert ev.run_gates.__module__ == "loopml.evaluate.gating.gates"
    with pytest.raises(AttributeError):
        ev.nope  # noqa: B018


@dataclass(kw_only=True)
class _RowCountGate(Gate):
    """A gate defined outside loopml: a dataclass of its options with its own validate."""

    name: ClassVar[str] = "rows"
    min_rows: int = 10
    blocking: bool = True

    def validate(self, task: str = "classification") -> None:
        if self.min_rows < 1:
            raise ConfigError("gates.rows.min_rows must be >= 1.", field="gates.rows.min_rows")

    def run(self, ctx):
        n = len(ctx.y_test)
        return self.result("pass" if n >= self.min_rows else "fail", f"{n} rows.", n=n)


def test_a_registered_dataclass_gate_is_built_checked_and_run():
    register_gate("rows", _RowCountGate)
    try:
        gates = build_gates(
            {
                "rows": {"min_rows": 3},
                "metrics": {"thresholds": {"accuracy": ">= 0"}, "min_rows": 1},
            }
        )
        assert [g.name for g in gates] == ["metrics", "rows"]
        assert gates[1].params() == {"min_rows": 3, "blocking": True}
        with pytest.raises(ConfigError, match=r"Unknown option\(s\) \['min_row'\] in gates.rows"):
            build_gates({"rows": {"min_row": 3}})
        with pytest.raises(ConfigError, match="must be >= 1"):
            build_gates({"rows": {"min_rows": 0}})
        assert build_gates({"rows": {"enabled": False}}) == []
        X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
        y = np.array([0, 0, 1, 1])
        model = LogisticRegression().fit(X, y)
        results = run_gates(gates, GateContext(model=model, X_test=X, y_test=y))
        assert [(r.gate, r.verdict) for r in results] == [("metrics", "pass"), ("rows", "pass")]
    finally:
        GATE_TYPES.pop("rows")
