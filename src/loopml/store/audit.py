"""The append-only decisions/audit log: who did what to which subject, why, with what
evidence, and the state before and after. Rows are only ever inserted."""

from __future__ import annotations

import time
from typing import Any, cast

from sqlalchemy import Connection, insert, select
from sqlalchemy.engine import Engine

from loopml.store.rows import DecisionRow
from loopml.store.tables import decisions
from loopml.store.util import row_dict


def record(
    conn: Connection,
    *,
    actor: str,
    action: str,
    subject: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
    endpoint: str | None = None,
    before: Any = None,
    after: Any = None,
    at: float | None = None,
) -> int:
    """Append one decision inside the caller's transaction; returns its id."""
    res = conn.execute(
        insert(decisions).values(
            at=at if at is not None else time.time(),
            actor=actor,
            action=action,
            subject=subject,
            endpoint=endpoint,
            reason=reason,
            evidence=evidence or {},
            before=before,
            after=after,
        )
    )
    return int(res.inserted_primary_key[0])  # type: ignore[index]


class Decisions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, **kw: Any) -> int:
        with self.engine.begin() as conn:
            return record(conn, **kw)

    def list(
        self,
        *,
        endpoint: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        subject: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 200,
    ) -> list[DecisionRow]:
        q = select(decisions).order_by(decisions.c.id.desc()).limit(limit)
        for col, val in (
            (decisions.c.endpoint, endpoint),
            (decisions.c.actor, actor),
            (decisions.c.action, action),
            (decisions.c.subject, subject),
        ):
            if val is not None:
                q = q.where(col == val)
        if since is not None:
            q = q.where(decisions.c.at >= since)
        if until is not None:
            q = q.where(decisions.c.at <= until)
        with self.engine.connect() as conn:
            return [cast(DecisionRow, row_dict(r)) for r in conn.execute(q)]

    def get(self, decision_id: int) -> DecisionRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(decisions).where(decisions.c.id == decision_id)).first()
        return cast(DecisionRow, row_dict(r)) if r else None
