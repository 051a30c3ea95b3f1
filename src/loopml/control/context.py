"""What every part of one controller shares: config, store, clock and who acts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from loopml.config import Config, GuardsConfig, RolloutConfig
from loopml.logs.layout import LogLocation, log_location
from loopml.logs.partcache import PartCache
from loopml.store import Store
from loopml.store.rows import EndpointChange

if TYPE_CHECKING:
    from loopml.control.rollout_memory import RolloutMemory

ACTOR = "controller"


class Decided(TypedDict):
    """A decision as the controller reports it (what ``reconcile_once`` returns): the stored
    decision's id and what it says; ``rollout`` names the rollout it moved, if any."""

    id: int
    action: str
    subject: str
    endpoint: str | None
    reason: str
    evidence: dict[str, Any]
    rollout: NotRequired[int]


@dataclass
class Context:
    cfg: Config
    store: Store
    clock: Callable[[], float]
    holder: str
    actor: str = ACTOR
    # the log parts read by earlier passes (a controller keeps one Context for its life)
    parts: PartCache = field(default_factory=PartCache)
    # what each active rollout's passes keep between them, by rollout id (control.rollout.look)
    memories: dict[int, RolloutMemory] = field(default_factory=dict)
    pair_wait: float = 900.0  # control.rollout_memory.PAIR_WAIT (tests shorten it)

    @property
    def root(self) -> LogLocation:
        """Where the prediction log is read (``loopml.logs.layout.log_location``)."""
        return log_location(self.cfg)

    @property
    def rollout(self) -> RolloutConfig:
        return self.cfg.deploy.rollout if self.cfg.deploy else RolloutConfig.model_validate({})

    @property
    def guards(self) -> GuardsConfig:
        return self.rollout.guards

    def decide(
        self,
        *,
        action: str,
        subject: str,
        reason: str,
        endpoint: str | None = None,
        evidence: dict[str, Any] | None = None,
        before: Any = None,
        after: Any = None,
    ) -> Decided:
        """Append a decision to the audit log and return it (what ``reconcile_once`` reports)."""
        ev = {**(evidence or {}), "controller": self.holder, "clock": self.clock()}
        did = self.store.decisions.record(
            actor=self.actor,
            action=action,
            subject=subject,
            endpoint=endpoint,
            reason=reason,
            evidence=ev,
            before=before,
            after=after,
        )
        return {
            "id": did,
            "action": action,
            "subject": subject,
            "endpoint": endpoint,
            "reason": reason,
            "evidence": ev,
        }

    def traffic_decision(self, changed: EndpointChange) -> Decided:
        """The decision the store recorded for the traffic change that returned ``changed``
        (found by the id the store returned, never by "the latest of this action")."""
        return self.recorded(changed["decision_id"])

    def recorded(self, decision_id: int | None) -> Decided:
        """The decision with the id a store write returned, as ``decide`` reports one."""
        row = self.store.decisions.get(decision_id) if decision_id is not None else None
        assert row is not None, "a store write returns the id of the decision it wrote"
        return {
            "id": row["id"],
            "action": row["action"],
            "subject": row["subject"],
            "endpoint": row["endpoint"],
            "reason": row["reason"],
            "evidence": row["evidence"],
        }
