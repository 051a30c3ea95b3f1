"""An unreachable store is one warning per polling loop and one line when it is back, not a
traceback per pass (issue 14: the server printed one every second for the whole outage).
The server's traffic watcher, the controller and the monitor each poll a real Postgres
through a relay that is cut (every connection closed, new ones refused) and restored."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from loopml.config import Config, load_config
from loopml.control.loop_service import controller_service
from loopml.monitor.monitor_service import monitor_service
from loopml.serve.http.prometheus import Metrics
from loopml.serve.inference.pool import ModelPool
from loopml.serve.inference.watcher import TrafficWatcher
from loopml.serve.settings import Settings
from loopml.store import Store
from loopml.store.outage import StoreOutage
from tests.serve.serve_helpers import CONFIG, Cuttable

OUTAGE_S = 2.0


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, start: str) -> list[str]:
        return [m for r in self.records if (m := r.getMessage()).startswith(start)]


@contextlib.contextmanager
def captured(name: str) -> Iterator[Records]:
    logger, handler = logging.getLogger(name), Records()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def relayed_project(tmp_path: Path, pg_url: str) -> tuple[Cuttable, Config]:
    url = make_url(pg_url)
    relay = Cuttable((url.host or "127.0.0.1", url.port or 5432))
    store_url = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    (tmp_path / "loopml.yaml").write_text(
        CONFIG + f"store: {store_url}\nserve: {{controller_interval: 0.2s}}\n"
        "monitor: {schedule: 0.2s}\n"
    )
    Store(store_url).close()  # the schema, while the database is reachable
    return relay, load_config(tmp_path)


async def outage(relay: Cuttable, log: Records) -> None:
    """Cut the relay for OUTAGE_S, restore it, and wait for the loop to say it is back."""
    await asyncio.sleep(0.5)
    relay.cut()
    await asyncio.sleep(OUTAGE_S)
    relay.restore()
    deadline = time.monotonic() + 20
    while not log.lines("store reachable again") and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


def check(log: Records, meanwhile: str) -> None:
    tracebacks = [r.getMessage() for r in log.records if r.exc_info]
    assert not tracebacks, f"{len(tracebacks)} tracebacks during the outage: {tracebacks[:3]}"
    down = log.lines("store unreachable: ")
    assert len(down) == 1, [r.getMessage() for r in log.records]
    assert meanwhile in down[0] and "retrying every 0.2 s" in down[0], down[0]
    back = log.lines("store reachable again after ")
    assert len(back) == 1, [r.getMessage() for r in log.records]
    assert not log.lines("store still unreachable")  # no reminder within OUTAGE_S


@pytest.mark.anyio
async def test_watcher_warns_once_and_says_when_the_store_is_back(pg_url, tmp_path):
    relay, cfg = relayed_project(tmp_path, pg_url)
    settings = Settings.from_config(cfg, auth=False)
    store = Store(cfg.store_url)
    watcher = TrafficWatcher(settings, store, ModelPool(settings, store), Metrics())
    with captured("loopml.serve") as log:
        watcher.start()
        try:
            await outage(relay, log)
        finally:
            await watcher.stop()
            store.close()
    check(log, "serving from the cached traffic table")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("service", "logger", "meanwhile"),
    [
        (controller_service, "loopml.control", "the controller is paused"),
        (monitor_service, "loopml.monitor", "monitoring passes are skipped"),
    ],
    ids=["controller", "monitor"],
)
async def test_service_warns_once_and_says_when_the_store_is_back(
    service, logger, meanwhile, pg_url, tmp_path
):
    relay, cfg = relayed_project(tmp_path, pg_url)
    with captured(logger) as log:
        async with service(cfg):
            await outage(relay, log)
    check(log, meanwhile)


def test_reminders_and_other_errors() -> None:
    """A real refused connection: one warning, a reminder per remind_seconds, one line back;
    an error that is not the store being unreachable is left to the caller."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    engine = create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none")
    with pytest.raises(OperationalError) as refused:
        engine.connect()
    now = [0.0]
    with captured("loopml.test") as log:
        outage = StoreOutage(
            logging.getLogger("loopml.test"),
            meanwhile="doing the cached thing",
            resumed="doing the real thing",
            retry_seconds=1.0,
            clock=lambda: now[0],
        )
        assert not outage.failed(ValueError("a bug"))
        for _ in range(700):
            assert outage.failed(refused.value)
            now[0] += 1.0
        outage.ok()
        outage.ok()
    lines = [r.getMessage() for r in log.records]
    assert len(lines) == 4, lines  # the start, reminders at 300 s and 600 s, the recovery
    assert lines[0].startswith("store unreachable: ") and "\n" not in lines[0]
    assert "refused" in lines[0].lower() and "doing the cached thing" in lines[0]
    assert lines[1].startswith("store still unreachable after 300 s (301 failed attempts)")
    assert (
        lines[3]
        == "store reachable again after 700.0 s (700 failed attempts); doing the real thing"
    )
