"""The access log, off the event loop: requests leave a tuple, a thread writes the lines.

Under load the access log was one of the server's largest costs on the event loop (~10% of
py-spy samples at 64 connections): building a JSON line and a ``LogRecord`` per request,
and a ``write`` system call per line, because ``sys.stderr`` is line-buffered. Here the
middleware only appends a tuple to a deque (thread-safe, well under a microsecond); a
daemon thread wakes every ``interval`` seconds, turns what has gathered into JSON lines and
hands each to the ``loopml.access`` logger, so logging's handlers and filters still see one
record per request. :class:`JSONLinesHandler` then writes a wake-up's lines to its stream
with one ``write``. When nothing but such handlers could see a record (the logger has no
filters and does not propagate, its handlers are :class:`JSONLinesHandler` without filters:
what ``loopml serve`` configures), the thread hands them the lines directly, without a
``LogRecord`` each: the thread's CPU per request fell from 7.7 to ~2 us, which is CPU the
server's one core does not serve requests with.

The standard library's ``QueueHandler`` was not enough: it still builds and formats the
``LogRecord`` on the calling thread, which is the part that costs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, TextIO

from loopml.serve.wire.protocols import dumps

access_log = logging.getLogger("loopml.access")

FIELDS = ("ts", "method", "path", "route", "status", "ms", "client", "actor")


class AccessLines:
    """Gathers access entries on the event loop; a thread formats and logs them."""

    def __init__(self, logger: logging.Logger = access_log, interval: float = 0.2) -> None:
        self.logger = logger
        self.interval = interval
        self._entries: deque[tuple[Any, ...]] = deque(maxlen=1_000_000)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def add(self, entry: tuple[Any, ...]) -> None:
        """Queue one request's fields (in :data:`FIELDS` order); the thread writes it."""
        self._entries.append(entry)
        if self._thread is None and not self._closed:
            self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="loopml-access-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            self.flush()

    def flush(self) -> None:
        """Log every queued entry now (the thread does this every ``interval``)."""
        with self._lock:
            entries = self._entries
            if not entries:
                return
            log = self.logger
            n = len(entries)
            lines = [
                dumps(dict(zip(FIELDS, entries.popleft(), strict=True))).decode() for _ in range(n)
            ]
            direct = _only_json_lines(log)
            if direct is None:
                for line in lines:
                    log.info(line)
            for handler in log.handlers:
                if isinstance(handler, JSONLinesHandler):
                    if direct is not None:
                        handler.add_lines(lines)
                    handler.flush()

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self.flush()


def _only_json_lines(logger: logging.Logger) -> list[JSONLinesHandler] | None:
    """``logger``'s handlers when INFO records would reach only them, unfiltered (then the
    lines they would write can be handed to them directly); else ``None``."""
    if logger.filters or logger.propagate or not logger.isEnabledFor(logging.INFO):
        return None
    handlers = logger.handlers
    if not handlers or any(
        type(h) is not JSONLinesHandler or h.filters or h.level > logging.INFO for h in handlers
    ):
        return None
    return handlers  # type: ignore[return-value]


class JSONLinesHandler(logging.StreamHandler):
    """Writes each message as it is (already JSON) plus a newline; lines are held in memory
    and written with one ``write`` when flushed (by :class:`AccessLines` after each wake-up,
    or when ``max_delay`` seconds have passed since the last write)."""

    def __init__(self, stream: TextIO, max_delay: float = 0.5) -> None:
        super().__init__(stream)
        self.max_delay = max_delay
        self._pending: list[str] = []
        self._last = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._pending.append(record.getMessage())
            if time.monotonic() - self._last >= self.max_delay:
                self.flush()
        except Exception:  # pragma: no cover - a broken stream must not fail requests
            self.handleError(record)

    def add_lines(self, lines: list[str]) -> None:
        """What :meth:`emit` does for each of ``lines``, without their ``LogRecord``s."""
        self.acquire()
        try:
            self._pending.extend(lines)
        finally:
            self.release()

    def flush(self) -> None:
        self.acquire()
        try:
            self._last = time.monotonic()
            if not self._pending:
                return
            text = "\n".join(self._pending) + "\n"
            self._pending.clear()
            if self.stream is not None:
                self.stream.write(text)
                if hasattr(self.stream, "flush"):
                    self.stream.flush()
        except Exception:  # pragma: no cover - a broken stream must not fail requests
            self._pending.clear()
        finally:
            self.release()

    def close(self) -> None:
        self.flush()
        super().close()
