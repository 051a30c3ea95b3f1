"""The monitor as a ``loopml serve`` service: ``run_monitor`` every ``monitor.schedule``
seconds in a background thread, for the life of the server (``loopml monitor`` is the same
pass, once, for cron). Passes are serialised across replicas by the monitor's store lease."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator

from loopml.config import Config
from loopml.logs.parts import LiveLog
from loopml.monitor.jobs import run_monitor
from loopml.store import Store
from loopml.store.outage import StoreOutage

log = logging.getLogger("loopml.monitor")


def _loop(cfg: Config, store: Store, stop: threading.Event, live: LiveLog | None) -> None:
    outage = StoreOutage(
        log,
        meanwhile="monitoring passes are skipped",
        resumed="monitoring passes run again",
        retry_seconds=cfg.monitor.schedule,
    )
    while not stop.wait(cfg.monitor.schedule):
        try:
            run_monitor(cfg, store, live=live)
            outage.ok()
        except Exception as exc:  # a failing pass must not stop monitoring; it is retried next time
            if not outage.failed(exc):
                log.exception("monitoring pass failed; retrying in %.0f s", cfg.monitor.schedule)


@contextlib.asynccontextmanager
async def monitor_service(cfg: Config, live: LiveLog | None = None) -> AsyncIterator[None]:
    """``live``: the server's reader of its not yet compacted log segments (``server.py``)."""
    store = Store(cfg.store_url)
    stop = threading.Event()
    thread = threading.Thread(
        target=_loop, args=(cfg, store, stop, live), name="loopml-monitor", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 60)
        store.close()
