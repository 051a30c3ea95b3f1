"""Queries for ``monitor_refused``: refused traffic per (endpoint, window start).

Rows are written with ``save`` (insert, or update the same key), so monitor reruns never
duplicate a window; ``series`` reads an endpoint's windows oldest first, for alert rules and
the dashboard.
"""

from __future__ import annotations

import time
from typing import Any, cast

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from loopml.store.rows import RefusedWindow
from loopml.store.tables import monitor_refused
from loopml.store.util import row_dict

T = monitor_refused.c


class RefusedWindows:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, *, endpoint: str, start: float, **values: Any) -> int:
        """Insert the window's row or update the row with the same key; returns its id."""
        now = time.time()
        key = (T.endpoint == endpoint, T.start == start)
        with self.engine.begin() as conn:
            found = conn.execute(select(T.id).where(*key)).scalar()
            if found is not None:
                conn.execute(
                    update(monitor_refused).where(T.id == found).values(updated_at=now, **values)
                )
                return int(found)
            res = conn.execute(
                insert(monitor_refused).values(
                    endpoint=endpoint, start=start, computed_at=now, updated_at=now, **values
                )
            )
            return int(res.inserted_primary_key[0])  # type: ignore[index]

    def fingerprints(self, endpoint: str) -> dict[float, str]:
        """Window start -> digest of the counts it was computed from."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(T.start, T.log_files).where(T.endpoint == endpoint))
            return {float(s): str(f) for s, f in rows}

    def series(
        self,
        endpoint: str,
        *,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[RefusedWindow]:
        """The endpoint's windows with ``since <= start < until``, oldest first (the newest
        ``limit`` of them)."""
        q = select(monitor_refused).where(T.endpoint == endpoint)
        if since is not None:
            q = q.where(T.start >= since)
        if until is not None:
            q = q.where(T.start < until)
        q = q.order_by(T.start.desc())
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            rows = [cast(RefusedWindow, row_dict(r)) for r in conn.execute(q)]
        return rows[::-1]

    def at(self, endpoint: str, start: float) -> RefusedWindow | None:
        """The window of ``endpoint`` starting at ``start``, if it had refusals."""
        with self.engine.connect() as conn:
            r = conn.execute(
                select(monitor_refused).where(T.endpoint == endpoint, T.start == start)
            ).first()
        return None if r is None else cast(RefusedWindow, row_dict(r))
