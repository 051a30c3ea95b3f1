"""The shapes of the rows the store returns: one ``TypedDict`` per table that callers pass
around (versions, endpoints and their traffic, decisions, rollouts, retrains, monitor windows).

They are dicts at run time, exactly as before (the JSON API and the dashboard serialise them
as they are); the types let mypy check that a caller reads a field the row has. The rollout's
state is a ``StrEnum``: its members are the strings stored in the ``rollouts.state`` column,
so the stored values and every comparison with a plain string stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypedDict


class RolloutState(StrEnum):
    """Where a rollout is: ``ACTIVE`` states are advanced by the controller, the others are
    final (see ``control.rollout``)."""

    SHADOW = "shadow"
    CANARY = "canary"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    INCONCLUSIVE = "inconclusive"
    ABORTED = "aborted"


ACTIVE_STATES = (RolloutState.SHADOW, RolloutState.CANARY)


class Shadow(TypedDict):
    version_id: int
    fraction: float


class Traffic(TypedDict):
    """Who serves an endpoint, as stored in ``traffic_history`` and in decisions' before/after."""

    champion: int | None
    canary: int | None
    canary_weight: float
    shadows: list[Shadow]


class EndpointRow(TypedDict):
    name: str
    model: str
    champion_id: int | None
    canary_id: int | None
    canary_weight: float
    shadows: list[Shadow]
    previous_champion_id: int | None
    frozen: bool
    lock: int
    updated_at: float


class EndpointChange(EndpointRow):
    """An endpoint as a change left it, with the id of the decision that change wrote
    (``None`` when there was nothing to change, so nothing was written)."""

    decision_id: int | None


class TrafficRecord(TypedDict):
    id: int
    endpoint: str
    at: float
    traffic: Traffic


class DecisionRow(TypedDict):
    id: int
    at: float
    actor: str
    action: str
    subject: str
    endpoint: str | None
    reason: str
    evidence: dict[str, Any]
    before: Any
    after: Any


class RunRow(TypedDict):
    """A training run: what it trained on, with which code and environment, what it cost."""

    id: int
    project: str
    model: str
    status: str
    trigger: str
    params: dict[str, Any]
    metrics: dict[str, Any] | None
    snapshots: dict[str, str]
    git_commit: str | None
    git_dirty: bool | None
    python: str
    packages: dict[str, str]
    cpu_seconds: float | None
    peak_memory_mb: float | None
    wall_seconds: float | None
    train_seconds: float | None
    error: str | None
    started_at: float
    finished_at: float | None
    details: dict[str, Any] | None


class VersionRow(TypedDict):
    id: int
    model: str
    number: int
    run_id: int
    parent_id: int | None
    status: str
    lock: int
    format: str
    artifact: str
    reference_profile: str | None
    signature: dict[str, Any]
    metrics: dict[str, Any]
    slices: Any
    gates: list[dict[str, Any]]
    snapshots: dict[str, Any]
    manifest: dict[str, Any]
    manifest_signature: str | None
    extra: dict[str, Any]
    created_at: float
    status_changed_at: float
    expires_at: float | None


class RolloutRow(TypedDict):
    id: int
    endpoint: str
    candidate_id: int
    champion_id: int | None
    retrain_id: int | None
    state: RolloutState
    step: int
    started_at: float
    step_started_at: float
    cursor: float
    breaches: int
    judged: int
    evidence: dict[str, Any]
    finished_at: float | None
    reason: str | None
    updated_at: float


class RetrainRow(TypedDict):
    id: int
    endpoint: str
    trigger: str
    key: str
    status: str
    outcome: str | None
    reason: str
    evidence: dict[str, Any]
    requested_by: str
    requested_at: float
    started_at: float | None
    finished_at: float | None
    run_id: int | None
    version_id: int | None


@dataclass(frozen=True)
class Removal:
    """What the kill switch or a retirement did: the id of the status decision it wrote
    (``None`` when the version already had that status) and the endpoints it left."""

    decision_id: int | None
    endpoints: list[str]


class KeyRow(TypedDict):
    """An API key's record; the key's hash never leaves the store."""

    id: int
    prefix: str
    role: str
    name: str
    rate_per_s: float | None
    created_at: float
    revoked_at: float | None
    endpoints: list[str] | None


class WindowSummary(TypedDict):
    """The summary columns of a monitor window (``Monitoring.series``)."""

    id: int
    endpoint: str
    version: int
    role: str
    start: float
    end: float
    rows: int
    labels: int
    metric: str | None
    performance: float | None
    estimated_performance: float | None
    accuracy: float | None
    estimated_accuracy: float | None
    drift_score: float | None
    drifted: bool
    n_drifted: int
    prediction_drift: float | None
    quality_errors: int
    quality_warnings: int
    fairness_ratio: float | None
    latency_p50: float | None
    latency_p99: float | None
    errors: int
    estimate_status: str | None
    label_drift: float | None
    base_rate: float | None
    multivariate_auc: float | None


class WindowRow(WindowSummary):
    """One monitor window with its fingerprints and full per-column ``results``."""

    profile: str | None
    log_files: str
    label_files: str
    computed_at: float
    updated_at: float
    results: dict[str, Any]


class RefusedWindow(TypedDict):
    """Refused traffic of one endpoint in one monitor window (``monitor_refused``)."""

    id: int
    endpoint: str
    start: float
    end: float
    requests: int
    rows: int
    served: int
    share: float | None
    counts: list[dict[str, Any]]
    log_files: str
    computed_at: float
    updated_at: float


class AlertRow(TypedDict):
    id: int
    rule: str
    on: str
    endpoint: str
    subject: str
    severity: str
    status: str
    message: str
    evidence: dict[str, Any]
    count: int
    first_seen: float
    last_seen: float
    resolved_at: float | None
    window_id: int | None
    notified_at: float | None
    delivery: dict[str, Any] | None
    created_at: float
    updated_at: float
