"""Leadership: exactly one controller acts at a time across replicas.

On Postgres a session-level advisory lock (``pg_try_advisory_lock``) on a connection the
controller keeps open: the database releases it the moment that session ends, so a crashed
replica hands over at once and there is no lease to tune. SQLite has no advisory locks and all
replicas share one file, so there the store's lease lock (``store.locks``) is used, renewed at
every pass and while a retraining runs (``kept``), and taken over by another replica once it
expires (``ttl``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from loopml.store import Store

LOCK_NAME = "controller"
# a fixed 63-bit key for pg_try_advisory_lock, derived from the lock's name
PG_KEY = int.from_bytes(hashlib.sha256(b"loopml:controller").digest()[:8], "big") >> 1
log = logging.getLogger("loopml.control")


class Leadership:
    def __init__(self, store: Store, holder: str, *, ttl: float) -> None:
        self.store, self.holder, self.ttl = store, holder, ttl
        self.postgres = store.engine.dialect.name == "postgresql"
        self._conn: Any = None
        # set when leadership was just taken over from another controller (stopped or killed):
        # its holder name, read from the lock row it left (Postgres keeps one for this too)
        self.taken_from: str | None = None

    def acquire(self) -> bool:
        """Become (or stay) the acting controller; False when another one is."""
        if not self.postgres:
            before = self.store.locks.holder(LOCK_NAME, expired=True)
            got = self.store.locks.acquire(LOCK_NAME, self.holder, self.ttl)
            if got and before not in (None, self.holder):
                self.taken_from = before
            return got
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except SQLAlchemyError:  # the session died, and the lock with it: try again below
                log.warning("controller %s lost its database session; re-acquiring", self.holder)
                self._drop()
        conn = self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": PG_KEY}).scalar()
            )
        except SQLAlchemyError:
            conn.close()
            raise
        if got:
            self._conn = conn
            # the advisory lock decides; the lock row only names the holder, for takeovers
            try:
                before = self.store.locks.holder(LOCK_NAME, expired=True)
                if before is not None:
                    self.store.locks.release(LOCK_NAME, before)
                self.store.locks.acquire(LOCK_NAME, self.holder, 10 * 365 * 86400.0)
            except SQLAlchemyError as exc:  # leading all the same; only the name is missing
                log.warning("controller %s could not record itself as leader: %s", self.holder, exc)
                before = None
            if before not in (None, self.holder):
                self.taken_from = before
        else:
            conn.close()
        return got

    @contextlib.contextmanager
    def kept(self) -> Iterator[None]:
        """Keep the lease while a long step runs (a retraining may outlast ``ttl``): on SQLite
        a thread renews it every ``ttl / 3`` until the step ends, so no other replica takes
        over from a controller that is alive, and one killed mid-step still hands over
        within ``ttl``. On Postgres the session lock needs nothing."""
        if self.postgres:
            yield
            return
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.ttl / 3):
                try:
                    if not self.store.locks.acquire(LOCK_NAME, self.holder, self.ttl):
                        log.warning("controller %s lost its lease during a long step", self.holder)
                        return
                except SQLAlchemyError as exc:  # the store is down: the lease may run out
                    log.warning("controller %s could not renew its lease: %s", self.holder, exc)

        thread = threading.Thread(target=renew, name="loopml-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def holds(self) -> bool:
        if self.postgres:
            return self._conn is not None
        return self.store.locks.holder(LOCK_NAME) == self.holder

    def release(self) -> None:
        with contextlib.suppress(SQLAlchemyError):  # a clean stop: no takeover to report
            self.store.locks.release(LOCK_NAME, self.holder)  # (down: the lease runs out)
        if not self.postgres:
            return
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_KEY})
            self._drop()

    def _drop(self) -> None:
        # invalidate, not just close: a pooled session would keep holding the lock
        with contextlib.suppress(SQLAlchemyError):
            self._conn.invalidate()
            self._conn.close()
        self._conn = None
