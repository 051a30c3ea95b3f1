"""A lease lock in the store: one holder at a time, expiring if the holder dies.

Used so that exactly one controller (and one monitoring pass) acts across replicas. A row per lock name; acquiring is
an atomic conditional write (insert, or update where expired or already ours), which works
the same on SQLite and Postgres.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from loopml.store.tables import locks


class Locks:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def acquire(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew the lease; True when ``holder`` holds it now."""
        now = time.time()
        with self.engine.begin() as conn:
            res = conn.execute(
                update(locks)
                .where(
                    locks.c.name == name, (locks.c.holder == holder) | (locks.c.expires_at < now)
                )
                .values(holder=holder, expires_at=now + ttl)
            )
            if res.rowcount == 1:
                return True
            exists = conn.execute(select(locks.c.name).where(locks.c.name == name)).first()
            if exists is not None:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(locks).values(name=name, holder=holder, expires_at=now + ttl)
                    )
                return True
            except SAIntegrityError:
                return False

    def release(self, name: str, holder: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(locks).where(locks.c.name == name, locks.c.holder == holder))

    def expire(self, prefix: str) -> int:
        """Let every lease whose holder's name starts with ``prefix`` run out now (``host:pid:``
        of a process known to be dead), so that the next acquirer takes it over at once and
        sees whom from (``holder(name, expired=True)``); returns how many."""
        with self.engine.begin() as conn:
            res = conn.execute(
                update(locks)
                .where(locks.c.holder.startswith(prefix, autoescape=True))
                .values(expires_at=0.0)
            )
        return int(res.rowcount)

    def holder(self, name: str, *, expired: bool = False) -> str | None:
        """Who holds the lease now (``expired``: or held it last, lease run out or not)."""
        with self.engine.connect() as conn:
            r = conn.execute(select(locks).where(locks.c.name == name)).first()
        if r is None:
            return None
        return r.holder if expired or r.expires_at >= time.time() else None
