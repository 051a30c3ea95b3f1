"""Limits on slow and idle clients, in the HTTP protocol under the app.

uvicorn bounds only the idle time *between* requests (``timeout_keep_alive``): a client that
sends a request line and then one header byte every few seconds (slowloris), or a body one
byte at a time, holds its connection (and its memory) for as long as it likes, and so do
connections that never send anything. A probe held 300 such connections for 77 s and more.
:func:`protocol` returns uvicorn's httptools protocol with three bounds added:

- ``header_timeout``: from the connection's first moment (or from the first byte of the next
  request on a kept-alive connection) to the end of the request's headers;
- ``body_timeout``: from the end of the headers to the end of the body;
- ``max_connections``: past it, a new connection closes the oldest one that is not being
  answered (idle, or still sending headers), or itself if every connection is busy.

A connection past its bound is closed (the app sees a disconnect, like a client going
away). uvicorn's own class is subclassed, not copied: four callbacks each set or clear a
deadline, and one sweep per server (every quarter of the shorter bound, at most every
second) closes the connections past theirs. A timer per phase instead (``call_later`` and
``cancel`` twice a request) cost several microseconds a request, mostly for a small request
whose headers and body arrive in one read and disarm the timers they armed in the same
callback. :func:`uvicorn_options` is what ``loopml serve`` hands to uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

log = logging.getLogger("loopml.serve")


def protocol(header_timeout: float, body_timeout: float, max_connections: int) -> type:
    """uvicorn's ``HttpToolsProtocol`` with the bounds of the module docstring."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    tick = min(max(min(header_timeout, body_timeout) / 4, 0.01), 1.0)

    class BoundedHttpTools(HttpToolsProtocol):
        _deadline = math.inf  # when the current phase's bound passes (inf: none)
        _phase = "idle"  # idle -> headers -> body -> app -> idle (kept alive)
        _born = 0.0
        _sweep: asyncio.TimerHandle | None = None  # the server's sweep (class attributes)
        _sweep_loop: asyncio.AbstractEventLoop | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._born = self.loop.time()
            self._arm("headers", header_timeout)
            if len(self.connections) > max_connections:
                self._shed()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._phase != "headers":
                self._arm("headers", header_timeout)

        def on_headers_complete(self) -> None:
            self._arm("body", body_timeout)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()
            self._phase = "app"

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._phase == "app":
                self._phase = "idle"  # uvicorn's keep-alive timer bounds the idle time

        def _arm(self, phase: str, seconds: float) -> None:
            self._phase = phase
            self._deadline = self.loop.time() + seconds
            sweep = BoundedHttpTools._sweep
            if sweep is None or sweep.cancelled() or BoundedHttpTools._sweep_loop is not self.loop:
                BoundedHttpTools._sweep_loop = self.loop
                BoundedHttpTools._sweep = self.loop.call_later(tick, self._sweep_all)

        def _disarm(self) -> None:
            self._deadline = math.inf

        def _sweep_all(self) -> None:
            """Close every connection past its deadline; again in ``tick`` while any is open."""
            now = self.loop.time()
            for conn in list(self.connections):
                if isinstance(conn, BoundedHttpTools) and conn._deadline <= now:
                    conn._expire(conn._phase)
            BoundedHttpTools._sweep = (
                self.loop.call_later(tick, self._sweep_all) if self.connections else None
            )

        def _expire(self, phase: str) -> None:
            self._deadline = math.inf
            if not self.transport.is_closing():
                log.info(
                    "closed a connection from %s: its request %s took longer than %gs",
                    self.client[0] if self.client else "?",
                    phase,
                    header_timeout if phase == "headers" else body_timeout,
                )
                self.transport.close()

        def _shed(self) -> None:
            """Too many connections: close the oldest one not being answered."""
            waiting = [
                c
                for c in self.connections
                if getattr(c, "_phase", "app") in ("idle", "headers")
                and not c.transport.is_closing()
            ]
            victim = min(waiting, key=lambda c: getattr(c, "_born", 0.0)) if waiting else self
            victim.transport.close()

    return BoundedHttpTools


def uvicorn_options(serve: Any) -> dict[str, Any]:
    """The uvicorn options of ``serve`` (a :class:`~loopml.config.ServeConfig`)."""
    return {
        "http": protocol(serve.header_timeout, serve.body_timeout, serve.max_connections),
        "timeout_keep_alive": serve.idle_timeout,
    }
