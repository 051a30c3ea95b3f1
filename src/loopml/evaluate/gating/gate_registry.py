"""From the ``gates:`` section of loopml.yaml to gate objects.

``build_gates({"metrics": {"accuracy": ">= 0.7"}, "fairness": {...}}, sensitive=[...])``
returns the gates in a fixed order. The fairness gate is added with its defaults (four-fifths
rule) whenever sensitive attributes are declared, even without a ``fairness`` entry; set
``fairness: {enabled: false}`` to leave it out. Other stages add their gates with
:func:`register_gate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from loopml.errors import ConfigError
from loopml.evaluate.checklist.behaviour import BehaviourGate
from loopml.evaluate.gating.data_gate import DataGate
from loopml.evaluate.gating.fairness import FairnessGate
from loopml.evaluate.gating.gates import Gate
from loopml.evaluate.gating.label_lint import LabelGate
from loopml.evaluate.gating.metric_gates import ChampionGate, MetricGate
from loopml.evaluate.gating.stability import StabilityGate

GATE_TYPES: dict[str, type[Gate]] = {
    "metrics": MetricGate,
    "fairness": FairnessGate,
    "behaviour": BehaviourGate,
    "champion": ChampionGate,
    "data": DataGate,
    "labels": LabelGate,
    "stability": StabilityGate,
}


def register_gate(key: str, gate_type: type[Gate]) -> None:
    """Make ``gates.<key>`` build ``gate_type`` (for gates defined in other modules): a
    :class:`Gate` that is a dataclass of its options (or, like loopml's own, a subclass of a
    pydantic options model). loopml.yaml names only loopml's gates; a registered one is built
    from a ``gates`` mapping given to :func:`build_gates`."""
    GATE_TYPES[key] = gate_type


def build_gate(
    key: str, options: Mapping[str, Any] | None, *, task: str = "classification"
) -> Gate:
    """One gate from its YAML entry, validated; errors name ``gates.<key>.<option>``.

    loopml's gates check their options with their pydantic model (the one loopml.yaml is read
    with); a registered dataclass gate gets its unknown options named here and checks the rest
    in its own ``validate``."""
    if key not in GATE_TYPES:
        raise ConfigError(
            f"Unknown gate 'gates.{key}'. Valid gates: {', '.join(GATE_TYPES)}.",
            field=f"gates.{key}",
        )
    gate_type = GATE_TYPES[key]
    opts = dict(options or {})
    opts.pop("enabled", None)
    if not issubclass(gate_type, BaseModel):
        valid = gate_type.option_names()
        unknown = [k for k in opts if k not in valid]
        if unknown:
            raise ConfigError(
                f"Unknown option(s) {unknown} in gates.{key}. Valid options: {', '.join(valid)}.",
                field=f"gates.{key}.{unknown[0]}",
            )
    gate = gate_type(**opts)
    gate.validate(task)
    return gate


def build_gates(
    section: Mapping[str, Any] | None,
    *,
    sensitive: Sequence[str] = (),
    task: str = "classification",
) -> list[Gate]:
    """Every configured gate (plus the default fairness gate when ``sensitive`` is set)."""
    section = dict(section or {})
    gates = []
    for key in [*GATE_TYPES, *[k for k in section if k not in GATE_TYPES]]:
        options = section.get(key)
        if key not in section:
            if key == "fairness" and sensitive and task == "classification":
                gates.append(build_gate(key, None, task=task))
            continue
        if isinstance(options, Mapping) and options.get("enabled") is False:
            continue
        if options is not None and not isinstance(options, Mapping):
            raise ConfigError(
                f"gates.{key} must be a mapping of options; got {options!r}.", field=f"gates.{key}"
            )
        gates.append(build_gate(key, options, task=task))
    return gates
