"""Evaluation and promotion gates: metrics per slice, fairness, behavioural tests, and the gate
framework the training pipeline runs (``run_gates``).

Names are imported lazily so that importing ``loopml.evaluate`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "classification_metrics": "metrics",
    "regression_metrics": "metrics",
    "metric_names": "metrics",
    "metrics_by_slice": "slices",
    "group_fairness": "fairness",
    "FairnessReport": "fairness",
    "FairnessGate": "fairness",
    "GateResult": "gates",
    "GateContext": "gates",
    "Gate": "gates",
    "run_gates": "gates",
    "overall_verdict": "gates",
    "blocking_failures": "gates",
    "MetricGate": "metric_gates",
    "ChampionGate": "metric_gates",
    "BehaviourGate": "behaviour",
    "MFT": "behaviour",
    "INV": "behaviour",
    "DIR": "behaviour",
    "behaviour_test": "behaviour",
    "load_cases": "behaviour",
    "build_gates": "registry",
    "build_gate": "registry",
    "register_gate": "registry",
    "GATE_TYPES": "registry",
    "paired_bootstrap": "bootstrap",
    "wilson_interval": "intervals",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"loopml.evaluate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'loopml.evaluate' has no attribute {name!r}")
