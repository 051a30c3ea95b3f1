"""Endpoints and their traffic: champion, weighted canary, mirrored shadows.

Every change goes through ``change_traffic``: one transaction that checks the endpoint's
optimistic lock, updates the traffic, keeps each version's status in step with the role it
now plays, appends a traffic-history row (so "which version served at time T" has an
answer) and a decision with before/after, and returns the id of that decision with the
endpoint (``EndpointChange``). The CLI, the HTTP API and the controller all call these
functions; the operations built on it (deploy, promote, rollback, kill switch) are in
``store.deployments``.

Operations that read the endpoint first (deploy, promote, rollback, kill switch) pass the
revision they read as ``expected_lock``, so the decision is taken on the state it was computed
from: if another change landed in between, nothing is written and the caller gets a 409
naming both revisions (two concurrent deploys can no longer leave one version as canary and
shadow at once). Endpoint names are checked once, here, with the prediction log's rule.
"""

from __future__ import annotations

import builtins
import re
import time
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from loopml.errors import ConflictError, NotFoundError, UsageError
from loopml.store import audit
from loopml.store.registry import disabled_note, set_status
from loopml.store.rows import EndpointChange, EndpointRow, Traffic, TrafficRecord
from loopml.store.tables import endpoints, traffic_history, versions
from loopml.store.util import row_dict

_KEEP: Any = object()
# written in a traffic change's own transaction (``change_traffic``'s ``also``)
Also = Callable[[Connection], None]
# statuses a version keeps when it leaves traffic (any other becomes "candidate")
OFF_TRAFFIC = ("candidate", "retired", "disabled", "rejected", "rolled_back", "inconclusive")
# the prediction log's rule: a name is a partition folder (endpoint=<name>) and a URL segment
ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_endpoint_name(name: str) -> None:
    """Refuse endpoint names the prediction log cannot store (``a b``, ``..``, ``é``, ...)."""
    if not isinstance(name, str) or not ENDPOINT_NAME.match(name):
        raise UsageError(
            "Endpoint names must start with a letter or digit and hold only letters, digits, "
            f"'.', '_' or '-' (at most 128). Got {str(name)[:64]!r}; choose another name.",
            field="endpoint",
        )


def traffic_of(row: EndpointRow) -> Traffic:
    return {
        "champion": row["champion_id"],
        "canary": row["canary_id"],
        "canary_weight": row["canary_weight"],
        "shadows": row["shadows"],
    }


def serving_versions(row: EndpointRow) -> set[int]:
    """The versions ``row`` puts in a role: champion, canary and shadows."""
    return {
        v
        for v in (row["champion_id"], row["canary_id"], *(s["version_id"] for s in row["shadows"]))
        if v is not None
    }


def _refuse_unservable(conn: Any, old: EndpointRow, new: EndpointRow) -> None:
    """Every version a traffic change puts in a role must exist and not be disabled: the
    kill switch is undone only by 'loopml enable', never by a promote, deploy or rollback."""
    for vid in sorted(serving_versions(new) - serving_versions(old)):
        status = conn.execute(select(versions.c.status).where(versions.c.id == vid)).scalar()
        if status is None:
            raise NotFoundError(
                f"No model version {vid}. List versions with 'loopml versions'.", field="version"
            )
        if status == "disabled":
            raise ConflictError(
                f"Version {vid} cannot serve endpoint {new['name']!r}: "
                f"{disabled_note(conn, vid)}. An admin can re-enable it with "
                f"'loopml enable {vid}' (recorded in the decisions log).",
                field="version",
            )


class Endpoints:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ reads
    def get(self, name: str) -> EndpointRow:
        with self.engine.connect() as conn:
            r = conn.execute(select(endpoints).where(endpoints.c.name == name)).first()
        if r is None:
            raise NotFoundError(
                f"No endpoint {name[:64]!r}. Deploy a version to it with "
                f"'loopml deploy {name[:64]} VERSION'.",
                field="endpoint",
            )
        return cast(EndpointRow, row_dict(r))

    def list(self) -> list[EndpointRow]:
        with self.engine.connect() as conn:
            return [
                cast(EndpointRow, row_dict(r))
                for r in conn.execute(select(endpoints).order_by(endpoints.c.name))
            ]

    def locks(self) -> dict[str, int]:
        """name -> lock: a cheap poll for replicas to notice traffic changes."""
        with self.engine.connect() as conn:
            return {
                r.name: r.lock for r in conn.execute(select(endpoints.c.name, endpoints.c.lock))
            }

    def history(self, name: str, *, at: float | None = None) -> builtins.list[TrafficRecord]:
        """Traffic changes of ``name``; with ``at``, only the one in force at that time."""
        q = select(traffic_history).where(traffic_history.c.endpoint == name)
        if at is not None:
            q = q.where(traffic_history.c.at <= at).order_by(traffic_history.c.at.desc()).limit(1)
        else:
            q = q.order_by(traffic_history.c.at)
        with self.engine.connect() as conn:
            return [cast(TrafficRecord, row_dict(r)) for r in conn.execute(q)]

    # ------------------------------------------------------------------ writes
    def change_traffic(
        self,
        name: str,
        *,
        actor: str,
        action: str,
        reason: str,
        model: str | None = None,
        champion: Any = _KEEP,
        canary: Any = _KEEP,
        canary_weight: Any = _KEEP,
        shadows: Any = _KEEP,
        previous_champion: Any = _KEEP,
        evidence: dict[str, Any] | None = None,
        expected_lock: int | None = None,
        allow_frozen: bool = False,
        left: dict[int, str] | None = None,
        also: Also | None = None,
    ) -> EndpointChange:
        """Change ``name``'s traffic if its revision is still ``expected_lock``; versions that
        leave traffic become ``candidate``, or the status ``left`` names for them. ``also``
        runs in the change's transaction: what must change with the traffic or not at all (the
        controller's rollout row), so a crash never leaves one without the other. Returns the
        endpoint as changed, with ``decision_id``: the id of the decision this change wrote."""
        now = time.time()
        try:
            return self._change_traffic(
                name,
                now,
                actor=actor,
                action=action,
                reason=reason,
                model=model,
                values=(champion, canary, canary_weight, shadows, previous_champion),
                evidence=evidence,
                expected_lock=expected_lock,
                allow_frozen=allow_frozen,
                left=left,
                also=also,
            )
        except IntegrityError:
            if model is None:
                raise
            # two first deploys raced to create the endpoint; the other one won
            raise ConflictError(
                f"Endpoint {name!r} was created by another change while this {action} was "
                "being made. Nothing was changed; look at the endpoint and try again.",
                field="endpoint",
            ) from None

    def _change_traffic(
        self,
        name: str,
        now: float,
        *,
        actor: str,
        action: str,
        reason: str,
        model: str | None,
        values: tuple[Any, Any, Any, Any, Any],
        evidence: dict[str, Any] | None,
        expected_lock: int | None,
        allow_frozen: bool,
        left: dict[int, str] | None = None,
        also: Also | None = None,
    ) -> EndpointChange:
        champion, canary, canary_weight, shadows, previous_champion = values
        with self.engine.begin() as conn:
            r = conn.execute(select(endpoints).where(endpoints.c.name == name)).first()
            if r is None:
                if model is None:
                    raise NotFoundError(f"No endpoint {name!r}.", field="endpoint")
                check_endpoint_name(name)
                conn.execute(
                    insert(endpoints).values(
                        name=name,
                        model=model,
                        shadows=[],
                        canary_weight=0.0,
                        frozen=False,
                        lock=0,
                        updated_at=now,
                    )
                )
                r = conn.execute(select(endpoints).where(endpoints.c.name == name)).first()
            row = cast(EndpointRow, row_dict(r))
            if row["frozen"] and not allow_frozen:
                raise ConflictError(
                    f"Endpoint {name!r} is frozen: automation and traffic changes are stopped. "
                    f"Run 'loopml unfreeze {name}' first.",
                    field="endpoint",
                )
            lock = row["lock"] if expected_lock is None else expected_lock
            if row["lock"] != lock:
                raise self._conflict(name, action, lock, row["lock"])
            given = {
                "champion_id": champion,
                "canary_id": canary,
                "canary_weight": canary_weight,
                "shadows": shadows,
                "previous_champion_id": previous_champion,
            }
            new = cast(EndpointRow, {**row, **{k: v for k, v in given.items() if v is not _KEEP}})
            if new["canary_id"] is None:
                new["canary_weight"] = 0.0
            _refuse_unservable(conn, row, new)
            res = conn.execute(
                update(endpoints)
                .where(endpoints.c.name == name, endpoints.c.lock == lock)
                .values(
                    champion_id=new["champion_id"],
                    canary_id=new["canary_id"],
                    canary_weight=float(new["canary_weight"]),
                    shadows=new["shadows"],
                    previous_champion_id=new["previous_champion_id"],
                    lock=lock + 1,
                    updated_at=now,
                )
            )
            if res.rowcount != 1:
                now_lock = conn.execute(
                    select(endpoints.c.lock).where(endpoints.c.name == name)
                ).scalar()
                raise self._conflict(name, action, lock, now_lock)
            self._sync_statuses(conn, row, new, left, actor=actor, reason=reason, endpoint=name)
            if also is not None:
                also(conn)
            before, after = traffic_of(row), traffic_of(new)
            conn.execute(insert(traffic_history).values(endpoint=name, at=now, traffic=after))
            decision_id = audit.record(
                conn,
                actor=actor,
                action=action,
                subject=f"endpoint:{name}",
                endpoint=name,
                reason=reason,
                evidence=evidence,
                before=before,
                after=after,
                at=now,
            )
        # the id of the decision written here, so a caller reports it without re-reading
        # "the latest decision" (which a concurrent writer may have replaced)
        return {**self.get(name), "decision_id": decision_id}

    @staticmethod
    def _conflict(name: str, action: str, expected: int, now: int | None) -> ConflictError:
        return ConflictError(
            f"Endpoint {name!r} changed while this {action} was being made (it was computed "
            f"from revision {expected}; the endpoint is now at revision {now}). Nothing was "
            f"changed; look at the endpoint ('loopml versions') and try again.",
            field="endpoint",
        )

    @staticmethod
    def _sync_statuses(
        conn: Any,
        old: EndpointRow,
        new: EndpointRow,
        left: dict[int, str] | None = None,
        **kw: Any,
    ) -> None:
        roles: dict[int, str] = {}
        for s in new["shadows"]:
            roles[s["version_id"]] = "shadow"
        if new["canary_id"] is not None:
            roles[new["canary_id"]] = "canary"
        if new["champion_id"] is not None:
            roles[new["champion_id"]] = "champion"
        for vid, role in roles.items():
            set_status(conn, vid, role, **kw)
        for vid in serving_versions(old) - set(roles):
            cur = conn.execute(select(versions.c.status).where(versions.c.id == vid)).scalar()
            if cur not in OFF_TRAFFIC:
                set_status(conn, vid, (left or {}).get(vid, "candidate"), **kw)

    def set_frozen(self, name: str, frozen: bool, *, actor: str, reason: str) -> EndpointChange:
        with self.engine.begin() as conn:
            row = conn.execute(select(endpoints).where(endpoints.c.name == name)).first()
            if row is None:
                raise NotFoundError(f"No endpoint {name!r}.", field="endpoint")
            conn.execute(
                update(endpoints)
                .where(endpoints.c.name == name)
                .values(frozen=frozen, lock=row.lock + 1, updated_at=time.time())
            )
            decision_id = audit.record(
                conn,
                actor=actor,
                action="freeze" if frozen else "unfreeze",
                subject=f"endpoint:{name}",
                endpoint=name,
                reason=reason,
                before={"frozen": row.frozen},
                after={"frozen": frozen},
            )
        return {**self.get(name), "decision_id": decision_id}
