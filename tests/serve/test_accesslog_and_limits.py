"""The access log is written off the event loop, in batches; rate limits are set per key."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import threading
import time

import httpx
import pytest
import serve_helpers as h

from loopml.cli import main
from loopml.serve.http.accesslog import AccessLines, JSONLinesHandler

pytestmark = pytest.mark.anyio


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_access_lines_are_written_by_a_thread_not_the_event_loop(settings, keys):
    """On a real server: one JSON line per request, logged from the access-log thread."""
    access = logging.getLogger("loopml.access")
    seen = _Records()
    old = (access.handlers[:], access.level, access.propagate)
    access.handlers[:] = [seen]
    access.setLevel(logging.INFO)
    access.propagate = False
    try:
        with h.thread_server(dataclasses.replace(settings, access_log=True)) as (url, _):
            with httpx.Client(base_url=url) as c:
                for i in range(5):
                    r = c.post(
                        "/v1/endpoints/credit/predict",
                        json={"rows": [h.row(i)]},
                        headers=h.bearer(keys["predictor"]),
                    )
                    assert r.status_code == 200, r.text
                assert c.get("/nope").status_code == 404
            deadline = time.monotonic() + 5
            while len(seen.records) < 6 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        access.handlers[:], level, access.propagate = old[0], old[1], old[2]
        access.setLevel(level)
    lines = [json.loads(r.getMessage()) for r in seen.records]
    predicts = [x for x in lines if x["path"] == "/v1/endpoints/credit/predict"]
    assert len(predicts) == 5
    assert {x["route"] for x in predicts} == {"/v1/endpoints/{endpoint}/predict"}
    assert {x["status"] for x in predicts} == {200}
    assert all(x["actor"].startswith("key:") and x["ms"] >= 0 for x in predicts)
    assert any(x["route"] == "(unmatched)" and x["status"] == 404 for x in lines)
    # the server runs its event loop on the "loopml-server" thread; none of this was logged there
    assert {r.threadName for r in seen.records} == {"loopml-access-log"}


class _CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


def test_json_lines_handler_writes_a_batch_with_one_write():
    """1,000 requests queued together reach the stream in one write (stderr is line-buffered,
    so a write per line was a system call per request)."""
    stream = _CountingStream()
    logger = logging.getLogger("loopml.test.access")
    logger.handlers[:] = [JSONLinesHandler(stream, max_delay=60)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    lines = AccessLines(logger, interval=60)
    for i in range(1000):
        lines.add((float(i), "POST", "/p", "/p", 200, 1.5, "127.0.0.1", None))
    assert stream.writes == 0  # nothing is written on the caller's thread
    lines.close()
    assert stream.writes == 1
    out = stream.getvalue().splitlines()
    assert len(out) == 1000
    assert json.loads(out[-1]) == {
        "ts": 999.0,
        "method": "POST",
        "path": "/p",
        "route": "/p",
        "status": 200,
        "ms": 1.5,
        "client": "127.0.0.1",
        "actor": None,
    }
    assert lines._thread is not None and not lines._thread.is_alive()
    assert threading.current_thread() is threading.main_thread()


def test_access_lines_skip_log_records_only_where_nothing_could_see_them():
    """Guards the direct path of the access-log thread: lines reach a lone JSONLinesHandler
    without a LogRecord each, and a filter on the logger still sees every record."""
    stream = io.StringIO()
    logger = logging.getLogger("loopml.test.access_direct")
    logger.handlers[:] = [JSONLinesHandler(stream, max_delay=60)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    made: list[logging.LogRecord] = []
    make = logger.makeRecord

    def counted(*args, **kwargs):
        made.append(make(*args, **kwargs))
        return made[-1]

    logger.makeRecord = counted  # type: ignore[method-assign]
    lines = AccessLines(logger, interval=60)
    for i in range(3):
        lines.add((float(i), "POST", "/p", "/p", 200, 1.5, "127.0.0.1", None))
    lines.flush()
    assert len(stream.getvalue().splitlines()) == 3 and made == []
    logger.addFilter(lambda r: json.loads(r.getMessage())["ts"] != 1.0)
    for i in range(3):
        lines.add((float(i), "POST", "/p", "/p", 200, 1.5, "127.0.0.1", None))
    lines.close()
    assert len(made) == 3
    assert [json.loads(x)["ts"] for x in stream.getvalue().splitlines()[3:]] == [0.0, 2.0]


async def test_keys_create_rate_limit_gives_one_key_its_own_limit(project, settings, store, capsys):
    """``loopml keys create --rate-limit N``: that key is limited to N/s, others keep the
    server's default (serve.rate_limit_per_s)."""
    assert (
        main(["-c", str(project), "keys", "create", "--role", "predictor", "--rate-limit", "0.5"])
        == 0
    )
    out = capsys.readouterr().out
    assert "its own rate limit of 0.5 requests/s" in out
    slow = out.strip().splitlines()[-1]
    assert main(["-c", str(project), "keys", "create", "--role", "predictor"]) == 0
    fast = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["-c", str(project), "keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "0.5/s" in listing and "default" in listing

    tight = h.tuned(settings, serve={"rate_burst": 3})
    async with h.serving(tight) as (_, c):

        async def codes(key: str) -> list[int]:
            out = []
            for i in range(5):
                r = await c.post(
                    "/v1/endpoints/credit/predict", json={"rows": [h.row(i)]}, headers=h.bearer(key)
                )
                out.append(r.status_code)
            return out

        assert await codes(slow) == [200, 200, 200, 429, 429]
        assert await codes(fast) == [200] * 5  # the default, 1,000/s: not touched by the other


@pytest.mark.parametrize("bad", ["0", "-3", "fast", "inf"])
def test_keys_create_rate_limit_must_be_positive(project, capsys, bad):
    with pytest.raises(SystemExit) as exc:
        main(["-c", str(project), "keys", "create", "--role", "predictor", "--rate-limit", bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "positive number of requests per second" in err and "Traceback" not in err
