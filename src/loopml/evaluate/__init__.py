"""Evaluation and promotion gates: metrics per slice, fairness, behavioural tests, and the gate
framework the training pipeline runs (``run_gates``).

Names are imported lazily so that importing ``loopml.evaluate`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "classification_metrics": "measure.metrics",
    "regression_metrics": "measure.metrics",
    "metric_names": "measure.metrics",
    "metrics_by_slice": "measure.slices",
    "group_fairness": "gating.fairness",
    "FairnessReport": "gating.fairness",
    "FairnessGate": "gating.fairness",
    "GateResult": "gating.gates",
    "GateContext": "gating.gates",
    "Gate": "gating.gates",
    "run_gates": "gating.gates",
    "overall_verdict": "gating.gates",
    "blocking_failures": "gating.gates",
    "MetricGate": "gating.metric_gates",
    "ChampionGate": "gating.metric_gates",
    "BehaviourGate": "checklist.behaviour",
    "MFT": "checklist.behaviour",
    "INV": "checklist.behaviour",
    "DIR": "checklist.behaviour",
    "behaviour_test": "checklist.behaviour",
    "load_cases": "checklist.behaviour",
    "build_gates": "gating.gate_registry",
    "build_gate": "gating.gate_registry",
    "register_gate": "gating.gate_registry",
    "GATE_TYPES": "gating.gate_registry",
    "paired_bootstrap": "measure.bootstrap",
    "wilson_interval": "measure.intervals",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"loopml.evaluate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'loopml.evaluate' has no attribute {name!r}")
