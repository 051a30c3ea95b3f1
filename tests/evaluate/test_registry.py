"""The gates: section of loopml.yaml mapped onto gate objects, with errors naming the key."""

from __future__ import annotations

import pytest

import loopml.evaluate as ev
from loopml.errors import ConfigError
from loopml.evaluate.gating.gate_registry import build_gates


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
        ({"champion": {"delt": 0.1}}, "Valid options: metric, delta"),
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
