"""Data snapshots, training runs, model versions and aliases.

A version's ``id`` is its public number (``loopml deploy ENDPOINT 7``); ``number`` counts
versions per model for display. Status changes use optimistic locking on ``lock``: the
update names the lock value it read, so of two concurrent changes exactly one wins and the
other gets a ``ConflictError``.
"""

from __future__ import annotations

import time
from typing import Any, cast

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from loopml.errors import ConflictError, NotFoundError, UsageError
from loopml.store import audit
from loopml.store.rows import RunRow, VersionRow
from loopml.store.tables import aliases, decisions, runs, snapshots, versions
from loopml.store.util import row_dict

STATUSES = (
    "candidate",
    "rejected",
    "shadow",
    "canary",
    "champion",
    "retired",
    "disabled",
    "rolled_back",  # a rollout showed it worse than the champion: it was tried, never reused
    "inconclusive",  # a rollout ran out of time before showing it better or worse
)
MAX_ID = 2**63 - 1  # ids are 64-bit integers in every supported database


def check_id(version_id: Any) -> int:
    """``version_id`` as an int, or a :class:`NotFoundError` when no version can have it
    (beyond 64 bits SQLite raises OverflowError instead of finding nothing)."""
    try:
        vid = int(version_id)
    except (TypeError, ValueError):
        vid = -1
    if isinstance(version_id, bool) or not 0 < vid <= MAX_ID:
        shown = str(version_id)[:64]
        raise NotFoundError(
            f"No model version {shown}: version ids are whole numbers from 1 to {MAX_ID}. "
            "List versions with 'loopml versions'.",
            field="version",
        )
    return vid


def disabled_note(conn: Any, version_id: int) -> str:
    """'version N was disabled at T by ACTOR: REASON', from the decisions log."""
    from datetime import UTC, datetime

    row = conn.execute(
        select(decisions.c.at, decisions.c.actor, decisions.c.reason)
        .where(
            decisions.c.subject == f"version:{version_id}",
            decisions.c.action == "status:disabled",
        )
        .order_by(decisions.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return f"version {version_id} is disabled"
    at = datetime.fromtimestamp(row.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    reason = " ".join((row.reason or "no reason").split())
    if len(reason) > 200:  # shown to every caller of the endpoint
        reason = reason[:197] + "..."
    return f"version {version_id} was disabled at {at} by {row.actor}: {reason}"


class Snapshots:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def ensure(self, *, hash: str, source: str, rows: int, columns: Any) -> int:
        """The id of the snapshot with this content hash, recording it on first sight."""
        q = select(snapshots.c.id).where(snapshots.c.hash == hash)
        with self.engine.begin() as conn:
            found = conn.execute(q).scalar()
            if found is not None:
                return int(found)
            try:
                with conn.begin_nested():
                    res = conn.execute(
                        insert(snapshots).values(
                            hash=hash,
                            source=source,
                            rows=rows,
                            columns=columns,
                            created_at=time.time(),
                        )
                    )
                return int(res.inserted_primary_key[0])  # type: ignore[index]
            except SAIntegrityError:  # recorded concurrently
                return int(conn.execute(q).scalar_one())

    def get(self, hash: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            r = conn.execute(select(snapshots).where(snapshots.c.hash == hash)).first()
        if r is None:
            raise NotFoundError(f"No data snapshot with hash {hash}.")
        return row_dict(r)


class Runs:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(self, **values: Any) -> int:
        values.setdefault("started_at", time.time())
        values.setdefault("status", "running")
        with self.engine.begin() as conn:
            return int(conn.execute(insert(runs).values(**values)).inserted_primary_key[0])  # type: ignore[index]

    def finish(self, run_id: int, **values: Any) -> None:
        values.setdefault("finished_at", time.time())
        with self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(**values))

    def get(self, run_id: int) -> RunRow:
        with self.engine.connect() as conn:
            r = conn.execute(select(runs).where(runs.c.id == run_id)).first()
        if r is None:
            raise NotFoundError(f"No run {run_id}. List runs with 'loopml runs'.")
        return cast(RunRow, row_dict(r))

    def list(self, *, model: str | None = None, limit: int = 100) -> list[RunRow]:
        q = select(runs).order_by(runs.c.id.desc()).limit(limit)
        if model:
            q = q.where(runs.c.model == model)
        with self.engine.connect() as conn:
            return [cast(RunRow, row_dict(r)) for r in conn.execute(q)]


class Versions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(self, *, actor: str = "loopml run", reason: str = "", **values: Any) -> VersionRow:
        """Insert a new version (all fields at once: no half-written version) and log it."""
        now = time.time()
        values.setdefault("created_at", now)
        values.setdefault("status_changed_at", now)
        values.setdefault("extra", {})
        for attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    n = conn.execute(
                        select(func.coalesce(func.max(versions.c.number), 0)).where(
                            versions.c.model == values["model"]
                        )
                    ).scalar_one()
                    vid = int(
                        conn.execute(
                            insert(versions).values(number=n + 1, **values)
                        ).inserted_primary_key[0]  # type: ignore[index]
                    )
                    audit.record(
                        conn,
                        actor=actor,
                        action="register",
                        subject=f"version:{vid}",
                        reason=reason or f"registered as {values['status']}",
                        evidence={
                            "gates": values.get("gates", []),
                            "metrics": values.get("metrics", {}),
                        },
                        after={"status": values["status"]},
                    )
                return self.get(vid)
            except SAIntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def get(self, version_id: int) -> VersionRow:
        vid = check_id(version_id)
        with self.engine.connect() as conn:
            r = conn.execute(select(versions).where(versions.c.id == vid)).first()
        if r is None:
            raise NotFoundError(
                f"No model version {version_id}. List versions with 'loopml versions'.",
                field="version",
            )
        return cast(VersionRow, row_dict(r))

    def list(
        self, *, model: str | None = None, status: str | None = None, limit: int = 500
    ) -> list[VersionRow]:
        q = select(versions).order_by(versions.c.id.desc()).limit(limit)
        if model:
            q = q.where(versions.c.model == model)
        if status:
            q = q.where(versions.c.status == status)
        with self.engine.connect() as conn:
            return [cast(VersionRow, row_dict(r)) for r in conn.execute(q)]

    def latest(self, model: str, status: str | None = None) -> VersionRow | None:
        rows = self.list(model=model, status=status, limit=1)
        return rows[0] if rows else None

    def set_status(
        self,
        version_id: int,
        status: str,
        *,
        actor: str,
        reason: str,
        evidence: dict[str, Any] | None = None,
        expected_lock: int | None = None,
        endpoint: str | None = None,
    ) -> VersionRow:
        """Change a version's status if nobody else changed it since ``expected_lock``."""
        with self.engine.begin() as conn:
            set_status(
                conn,
                version_id,
                status,
                actor=actor,
                reason=reason,
                evidence=evidence,
                expected_lock=expected_lock,
                endpoint=endpoint,
            )
        return self.get(version_id)

    def disabled_note(self, version_id: int) -> str:
        """Who disabled ``version_id``, when and why (for 503s and refusals)."""
        with self.engine.connect() as conn:
            return disabled_note(conn, version_id)

    def enable(self, version_id: int, *, actor: str, reason: str) -> VersionRow:
        """Undo the kill switch: the only way back for a disabled version. It returns as a
        candidate (in no traffic); deploy or promote it again to serve it."""
        vid = check_id(version_id)
        with self.engine.begin() as conn:
            cur = conn.execute(select(versions.c.status).where(versions.c.id == vid)).scalar()
            if cur is None:
                raise NotFoundError(
                    f"No model version {vid}. List versions with 'loopml versions'.",
                    field="version",
                )
            if cur != "disabled":
                raise UsageError(
                    f"Version {vid} is {cur}, not disabled; there is nothing to enable.",
                    field="version",
                )
            note = disabled_note(conn, vid)
            set_status(conn, vid, "candidate", actor=actor, reason=reason)
            audit.record(
                conn,
                actor=actor,
                action="enable",
                subject=f"version:{vid}",
                reason=reason,
                evidence={"was": note},
                before={"status": "disabled"},
                after={"status": "candidate"},
            )
        return self.get(vid)

    def update_extra(self, version_id: int, **extra: Any) -> None:
        with self.engine.begin() as conn:
            cur = conn.execute(
                select(versions.c.extra).where(versions.c.id == version_id)
            ).scalar_one()
            conn.execute(
                update(versions).where(versions.c.id == version_id).values(extra={**cur, **extra})
            )


def set_status(
    conn: Any,
    version_id: int,
    status: str,
    *,
    actor: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
    expected_lock: int | None = None,
    endpoint: str | None = None,
) -> int | None:
    """The status change itself, inside the caller's transaction (with its decision); returns
    the id of that decision, or ``None`` when the version already had ``status``."""
    if status not in STATUSES:
        raise UsageError(f"Unknown status {status!r}; valid statuses: {', '.join(STATUSES)}.")
    row = conn.execute(
        select(versions.c.status, versions.c.lock).where(versions.c.id == version_id)
    ).first()
    if row is None:
        raise NotFoundError(f"No model version {version_id}.", field="version")
    lock = row.lock if expected_lock is None else expected_lock
    if row.status == status:
        return None
    res = conn.execute(
        update(versions)
        .where(versions.c.id == version_id, versions.c.lock == lock)
        .values(status=status, lock=lock + 1, status_changed_at=time.time())
    )
    if res.rowcount != 1:
        raise ConflictError(
            f"Version {version_id} was changed by someone else while this change was being made "
            f"(expected revision {lock}). Nothing was changed; reload and try again.",
            field="version",
        )
    return audit.record(
        conn,
        actor=actor,
        action=f"status:{status}",
        subject=f"version:{version_id}",
        endpoint=endpoint,
        reason=reason,
        evidence=evidence,
        before={"status": row.status},
        after={"status": status},
    )


class Aliases:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def set(self, model: str, alias: str, version_id: int, *, actor: str, reason: str) -> None:
        with self.engine.begin() as conn:
            old = conn.execute(
                select(aliases.c.version_id).where(
                    aliases.c.model == model, aliases.c.alias == alias
                )
            ).scalar()
            if old is None:
                conn.execute(
                    insert(aliases).values(
                        model=model, alias=alias, version_id=version_id, updated_at=time.time()
                    )
                )
            else:
                conn.execute(
                    update(aliases)
                    .where(aliases.c.model == model, aliases.c.alias == alias)
                    .values(version_id=version_id, updated_at=time.time())
                )
            audit.record(
                conn,
                actor=actor,
                action="alias",
                subject=f"{model}@{alias}",
                reason=reason,
                before={"version": old},
                after={"version": version_id},
            )

    def get(self, model: str, alias: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(aliases.c.version_id).where(
                    aliases.c.model == model, aliases.c.alias == alias
                )
            ).scalar()

    def of_model(self, model: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(aliases).where(aliases.c.model == model))
            return {r.alias: r.version_id for r in rows}
