"""The metadata store: runs, versions, endpoints, decisions, keys (SQLite or Postgres).

``open_store(url)`` migrates the schema if needed and returns a ``Store`` whose attributes
group the queries by what they hold: ``store.runs``, ``store.versions``, ``store.endpoints``,
``store.decisions``, ``store.keys`` ...
"""

from __future__ import annotations

from typing import Any

from loopml.store.audit import Decisions
from loopml.store.db import make_engine, migrate
from loopml.store.deployments import Deployments
from loopml.store.keys import Keys
from loopml.store.locks import Locks
from loopml.store.monitoring import Monitoring
from loopml.store.refusals_table import RefusedWindows
from loopml.store.registry import Aliases, Runs, Snapshots, Versions, set_status
from loopml.store.rollouts import Rollouts
from loopml.store.rows import Removal, VersionRow


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        migrate(self.engine)
        self.snapshots = Snapshots(self.engine)
        self.runs = Runs(self.engine)
        self.versions = Versions(self.engine)
        self.aliases = Aliases(self.engine)
        self.endpoints = Deployments(self.engine)
        self.decisions = Decisions(self.engine)
        self.keys = Keys(self.engine)
        self.locks = Locks(self.engine)
        self.monitoring = Monitoring(self.engine)
        self.refused = RefusedWindows(self.engine)
        self.rollouts = Rollouts(self.engine)

    def disable(self, version_id: int, *, actor: str, reason: str) -> Removal:
        """Kill switch: mark the version disabled, then take it out of every endpoint."""
        return self._take_out(version_id, "disabled", actor=actor, reason=reason)

    def enable(self, version_id: int, *, actor: str, reason: str) -> VersionRow:
        """Undo the kill switch (admin): the version returns as a candidate, in no traffic."""
        return self.versions.enable(version_id, actor=actor, reason=reason)

    def retire(
        self, version_id: int, *, actor: str, reason: str, evidence: dict[str, Any] | None = None
    ) -> Removal:
        return self._take_out(version_id, "retired", actor=actor, reason=reason, evidence=evidence)

    def _take_out(self, version_id: int, status: str, **why: Any) -> Removal:
        """Set ``status`` (``why``: actor, reason, evidence), then leave every endpoint."""
        with self.engine.begin() as conn:
            decision_id = set_status(conn, version_id, status, **why)
        action = "disable" if status == "disabled" else "retire"
        left = self.endpoints.remove_version(
            version_id, actor=why["actor"], reason=why["reason"], action=action
        )
        return Removal(decision_id=decision_id, endpoints=left)

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str) -> Store:
    return Store(url)


__all__ = ["Store", "open_store"]
