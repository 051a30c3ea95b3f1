"""The operations on an endpoint's traffic: deploy, promote, rollback, and taking a version
out of every endpoint (kill switch, retirement).

Each reads the endpoint, computes the change from what it read and makes it with
``Endpoints.change_traffic``, passing the revision it read (see ``store.endpoints``), so a
change computed from a stale state is refused rather than applied. ``store.endpoints`` is a
``Deployments``: the endpoint table with these operations.
"""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import select

from loopml.errors import ConflictError, NotFoundError, UsageError
from loopml.store.endpoints import Also, Endpoints, check_endpoint_name
from loopml.store.registry import disabled_note
from loopml.store.rows import EndpointChange, EndpointRow, VersionRow
from loopml.store.tables import versions


class Deployments(Endpoints):
    """``Endpoints`` plus the operations that compute a traffic change from the current one."""

    def deploy(
        self,
        name: str,
        version: VersionRow,
        *,
        actor: str,
        reason: str = "",
        canary: float | None = None,
        shadow: bool = False,
        shadow_fraction: float = 1.0,
        also: Also | None = None,
    ) -> EndpointChange:
        """Put ``version`` on ``name``: as champion, as a canary at ``canary`` %, or as a shadow
        (``also``: see ``Endpoints.change_traffic``)."""
        check_endpoint_name(name)
        if version["status"] == "disabled":
            with self.engine.connect() as conn:
                note = disabled_note(conn, version["id"])
            raise ConflictError(
                f"Version {version['id']} cannot be deployed: {note}. An admin can re-enable "
                f"it with 'loopml enable {version['id']}' (recorded in the decisions log).",
                field="version",
            )
        if version["status"] in ("rejected", "retired"):
            raise UsageError(
                f"Version {version['id']} is {version['status']} and cannot be deployed. "
                f"Train a new version with 'loopml run'.",
                field="version",
            )
        if canary is not None and not 0 < canary <= 100:
            raise UsageError(
                f"--canary must be a percentage in (0, 100]. Got {canary}.", field="canary"
            )
        try:
            cur = self.get(name)
        except NotFoundError:
            cur = None
        vid = version["id"]
        if cur is not None and cur["model"] != version["model"]:
            raise UsageError(
                f"Endpoint {name!r} serves model {cur['model']!r}; version {vid} belongs to "
                f"{version['model']!r}.",
                field="version",
            )
        shadows = [s for s in (cur["shadows"] if cur else []) if s["version_id"] != vid]
        if cur is None or cur["champion_id"] is None:
            if canary is not None or shadow:
                raise UsageError(
                    f"Endpoint {name!r} has no champion yet: deploy version {vid} "
                    f"without --canary/--shadow first.",
                    field="version",
                )
            return self.change_traffic(
                name,
                model=version["model"],
                actor=actor,
                action="deploy",
                reason=reason or f"version {vid} deployed as champion",
                champion=vid,
                shadows=shadows,
                expected_lock=None if cur is None else cur["lock"],
                also=also,
            )
        if cur["champion_id"] == vid and canary is None and not shadow:
            return {**cur, "decision_id": None}  # already so: nothing changed, nothing recorded
        if shadow:
            shadows.append({"version_id": vid, "fraction": float(shadow_fraction)})
            canary_kw: dict[str, Any] = {}
            if cur["canary_id"] == vid:
                canary_kw = {"canary": None}
            return self.change_traffic(
                name,
                actor=actor,
                action="shadow",
                shadows=shadows,
                reason=reason or f"version {vid} mirrored as shadow",
                expected_lock=cur["lock"],
                also=also,
                **canary_kw,
            )
        if canary is not None and canary < 100:
            return self.change_traffic(
                name,
                actor=actor,
                action="canary",
                canary=vid,
                canary_weight=float(canary),
                shadows=shadows,
                reason=reason or f"version {vid} takes {canary:g}% as canary",
                expected_lock=cur["lock"],
                also=also,
            )
        return self.promote(
            name, vid, actor=actor, reason=reason, expected_lock=cur["lock"], also=also
        )

    def promote(
        self,
        name: str,
        version_id: int,
        *,
        actor: str,
        reason: str = "",
        evidence: dict[str, Any] | None = None,
        expected_lock: int | None = None,
        also: Also | None = None,
    ) -> EndpointChange:
        cur = self.get(name)
        if cur["champion_id"] == version_id:
            raise ConflictError(
                f"Version {version_id} is already the champion of {name!r}.", field="version"
            )
        shadows = [s for s in cur["shadows"] if s["version_id"] != version_id]
        canary_kw: dict[str, Any] = {"canary": None} if cur["canary_id"] == version_id else {}
        return self.change_traffic(
            name,
            actor=actor,
            action="promote",
            champion=version_id,
            previous_champion=cur["champion_id"],
            shadows=shadows,
            evidence=evidence,
            reason=reason or f"version {version_id} promoted to champion",
            expected_lock=cur["lock"] if expected_lock is None else expected_lock,
            also=also,
            **canary_kw,
        )

    def rollback(
        self,
        name: str,
        *,
        actor: str,
        reason: str = "",
        evidence: dict[str, Any] | None = None,
        left: dict[int, str] | None = None,
        action: str = "rollback",
    ) -> EndpointChange:
        """Drop the canary and shadows; with none, return to the previous champion. Versions
        named in ``left`` get that status as they leave (a rollout's verdict: rolled_back,
        inconclusive); the decision is recorded as ``action``."""
        cur = self.get(name)
        if cur["canary_id"] is not None or cur["shadows"]:
            return self.change_traffic(
                name,
                actor=actor,
                action=action,
                left=left,
                canary=None,
                shadows=[],
                evidence=evidence,
                allow_frozen=True,
                reason=reason or "canary and shadows removed",
                expected_lock=cur["lock"],
            )
        prev = cur["previous_champion_id"]
        if prev is None:
            raise UsageError(
                f"Endpoint {name!r} has no canary and no previous champion to roll back to.",
                field="endpoint",
            )
        return self.change_traffic(
            name,
            actor=actor,
            action="rollback",
            champion=prev,
            previous_champion=None,
            evidence=evidence,
            allow_frozen=True,
            reason=reason or f"rolled back to version {prev}",
            expected_lock=cur["lock"],
        )

    def withdraw(
        self,
        name: str,
        version_id: int,
        *,
        actor: str,
        reason: str,
        evidence: dict[str, Any] | None = None,
        status: str | None = None,
        action: str = "rollback",
        also: Also | None = None,
    ) -> EndpointChange:
        """Take one challenger (the canary or one shadow) out of endpoint ``name`` and leave
        the rest of its traffic as it is: a rollout that fails ends its own candidate, not the
        experiments people deployed beside it. It leaves with ``status`` (rolled_back,
        inconclusive) and the decision is recorded as ``action``."""
        cur = self.get(name)
        kw: dict[str, Any] = {
            "shadows": [s for s in cur["shadows"] if s["version_id"] != version_id]
        }
        if cur["canary_id"] == version_id:
            kw["canary"] = None
        return self.change_traffic(
            name,
            actor=actor,
            action=action,
            left={version_id: status} if status else None,
            evidence=evidence,
            allow_frozen=True,
            reason=reason,
            expected_lock=cur["lock"],
            also=also,
            **kw,
        )

    def remove_version(
        self, version_id: int, *, actor: str, reason: str, action: str
    ) -> builtins.list[str]:
        """Take a version out of every endpoint at once (kill switch, retirement)."""
        touched = []
        for ep in self.list():
            if self._remove_from(ep, version_id, actor=actor, reason=reason, action=action):
                touched.append(ep["name"])
        return touched

    def _remove_from(
        self, ep: EndpointRow, version_id: int, *, actor: str, reason: str, action: str
    ) -> bool:
        """Take ``version_id`` out of endpoint ``ep``; a concurrent change is read and retried
        (the kill switch must not fail because a rollout step landed at the same moment)."""
        for attempt in range(10):
            try:
                return self._remove_once(ep, version_id, actor=actor, reason=reason, action=action)
            except ConflictError:
                if attempt == 9:
                    raise
                ep = self.get(ep["name"])
        return False

    def _remove_once(
        self, ep: EndpointRow, version_id: int, *, actor: str, reason: str, action: str
    ) -> bool:
        roles = {ep["champion_id"], ep["canary_id"], *(s["version_id"] for s in ep["shadows"])}
        if version_id not in roles:
            return False
        kw: dict[str, Any] = {
            "shadows": [s for s in ep["shadows"] if s["version_id"] != version_id]
        }
        if ep["canary_id"] == version_id:
            kw["canary"] = None
        if ep["champion_id"] == version_id:
            prev = ep["previous_champion_id"]
            ok = prev is not None and self._status(prev) not in (
                "disabled",
                "retired",
                "rejected",
            )
            # fall back to the previous champion; with none the endpoint answers 503
            kw["champion"] = prev if ok else None
            kw["previous_champion"] = None
        self.change_traffic(
            ep["name"],
            actor=actor,
            action=action,
            reason=reason,
            allow_frozen=True,
            expected_lock=ep["lock"],
            **kw,
        )
        return True

    def _status(self, version_id: int) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(versions.c.status).where(versions.c.id == version_id)
            ).scalar()
