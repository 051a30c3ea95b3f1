"""What a polling loop says while the metadata store cannot be reached.

The server's traffic watcher (every 0.2 s), the controller (every pass) and the monitor (every
pass) all read the store in a loop. During a database outage each of their passes fails the
same way, and a traceback per pass buries the one fact an operator needs. Each loop reports
its failures through a :class:`StoreOutage` instead: one warning when the outage starts, saying
what goes on meanwhile and how often it retries; a reminder every ``remind_seconds`` while it
lasts; one line when the store answers again. The recovery line is a warning too, so that it
shows wherever the outage did (under ``loopml serve`` the controller's and the monitor's
loggers show warnings only). Failures that are not the store being unreachable are left to
the caller, which logs them with their traceback: those are bugs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError


def unreachable(exc: BaseException) -> bool:
    """True when ``exc`` says the database could not be reached or dropped the connection
    (refused, reset, timed out, shut down), not that a statement was wrong."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def cause(exc: BaseException) -> str:
    """The driver's first line (SQLAlchemy adds the statement and a link after it)."""
    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    return (lines[0] if lines else type(inner).__name__)[:300]


@dataclass
class StoreOutage:
    """Outage reporting for one polling loop; see the module docstring.

    ``meanwhile`` says what the loop does while the store is down ("serving from the cached
    traffic table"), ``resumed`` what it does again once it is back."""

    log: logging.Logger
    meanwhile: str
    resumed: str
    retry_seconds: float
    clock: Callable[[], float] = time.monotonic
    remind_seconds: float = 300.0
    since: float | None = field(default=None, init=False)
    failures: int = field(default=0, init=False)
    _reminded: float = field(default=0.0, init=False)

    def failed(self, exc: BaseException) -> bool:
        """Report one failed pass. True when the store was unreachable (reported here);
        False for any other failure, which the caller logs in full."""
        if not unreachable(exc):
            return False
        now = self.clock()
        self.failures += 1
        if self.since is None:
            self.since = self._reminded = now
            self.log.warning(
                "store unreachable: %s; %s; retrying every %g s",
                cause(exc),
                self.meanwhile,
                self.retry_seconds,
            )
        elif now - self._reminded >= self.remind_seconds:
            self._reminded = now
            self.log.warning(
                "store still unreachable after %.0f s (%d failed attempts): %s; %s",
                now - self.since,
                self.failures,
                cause(exc),
                self.meanwhile,
            )
        return True

    def ok(self) -> None:
        """Report a pass that reached the store: ends an outage, if there was one."""
        if self.since is None:
            return
        self.log.warning(
            "store reachable again after %.1f s (%d failed attempts); %s",
            self.clock() - self.since,
            self.failures,
            self.resumed,
        )
        self.since, self.failures = None, 0
