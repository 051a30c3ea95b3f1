"""The monitor's loop: ``run_monitor`` every ``monitor.schedule`` seconds until stopped
(``loopml monitor`` is the same pass, once, for cron). Passes are serialised across replicas
by the monitor's store lease.

``loopml serve`` runs :func:`_loop` in its background process (``loopml.background_worker``,
the default ``serve.background: process``), where a pass cannot hold the serving process's
GIL; :func:`monitor_service` runs it in a thread of the server instead (``serve.background:
thread``, for embedding and debugging)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable

from loopml.config import Config
from loopml.logs.layout import log_location
from loopml.logs.parts import LiveLog
from loopml.memory import one_heavy_pass
from loopml.monitor.jobs import run_monitor
from loopml.store import Store
from loopml.store.outage import StoreOutage

log = logging.getLogger("loopml.monitor")
# how long a pass waits for a compaction of the same log to end (one_heavy_pass): a 30 s
# segment of the issue 14 soak (40k predictions) compacted in about a second
HEAVY_WAIT = 60.0


def _loop(
    cfg: Config,
    store: Store,
    stop: threading.Event,
    live: LiveLog | None,
    after: Callable[[], None] | None = None,
) -> None:
    """A pass every ``monitor.schedule`` s until ``stop`` is set; ``after`` runs after each
    pass, failed or not (the background process gives memory back there)."""
    outage = StoreOutage(
        log,
        meanwhile="monitoring passes are skipped",
        resumed="monitoring passes run again",
        retry_seconds=cfg.monitor.schedule,
    )
    spool = log_location(cfg).spool if live is not None else None
    while not stop.wait(cfg.monitor.schedule):
        # not while the server's compactor runs over the same log: their peaks would add up
        with one_heavy_pass(spool, wait=HEAVY_WAIT):
            try:
                run_monitor(cfg, store, live=live)
                outage.ok()
            except Exception as exc:  # a failing pass must not stop monitoring; retried next time
                if not outage.failed(exc):
                    log.exception(
                        "monitoring pass failed; retrying in %.0f s", cfg.monitor.schedule
                    )
            if after is not None:
                after()  # gives memory back: before the lock goes


@contextlib.asynccontextmanager
async def monitor_service(cfg: Config, live: LiveLog | None = None) -> AsyncIterator[None]:
    """The loop in a daemon thread of this process while the context is open. ``live``: the
    server's reader of its log segments not compacted yet (``background_worker.monitor_live``)."""
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
