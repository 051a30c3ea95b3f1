"""Chaos: Postgres stopped for 30 s under load. A real ``loopml serve`` process on a private
cluster (never the shared server) answers predictions from its cached traffic table the whole
time; its controller's passes fail while the database is down (paused) and it takes its
advisory lock again once it is back (resumed); every acknowledged prediction is in the
prediction log afterwards; the outage is one warning per polling loop and one line when it
ends, not a traceback per pass."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from loopml.logs.logreader import read_log
from tests._helpers.process import stop
from tests.chaos.conftest import PrivatePostgres, free_port
from tests.conftest import make_project, run_project
from tests.serve import serve_helpers as h

pytestmark = pytest.mark.slow
# the 30 s issue 14 asks for (LOOPML_CHAOS_OUTAGE_S for others)
OUTAGE_S = float(os.environ.get("LOOPML_CHAOS_OUTAGE_S", "30"))
ROOT = Path(__file__).resolve().parents[2]


def _project(root: Path, store_url: str) -> Path:
    config = h.CONFIG + "serve: {controller_interval: 1s}\n"
    make_project(root, config=config, frame=h.frame(), store=store_url, train_py=h.TRAIN_PY)
    _cfg, store, result = run_project(root)
    assert result.passed
    store.endpoints.deploy("credit", result.version, actor="test")
    store.close()
    return root


class Load:
    """Threads posting predictions as fast as the server answers; every answer is recorded
    as (time, status, request ids acknowledged)."""

    def __init__(self, port: int, threads: int = 2) -> None:
        self.url = f"http://127.0.0.1:{port}/v1/endpoints/credit/predict"
        self.stop = threading.Event()
        self.answers: list[tuple[float, int, list[str]]] = []
        self.threads = [threading.Thread(target=self._run, args=(k,)) for k in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self, k: int) -> None:
        with httpx.Client(timeout=10) as client:
            i = k
            while not self.stop.is_set():
                try:
                    r = client.post(self.url, json={"rows": [h.row(i % 50)]})
                    ids = r.headers.get("x-request-ids", "").split(",") if r.is_success else []
                    self.answers.append((time.monotonic(), r.status_code, [x for x in ids if x]))
                except httpx.HTTPError as exc:
                    self.answers.append((time.monotonic(), 0, [repr(exc)]))
                i += 2
                time.sleep(0.005)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def between(self, a: float, b: float) -> list[tuple[float, int, list[str]]]:
        return [x for x in self.answers if a <= x[0] < b]


def _advisory_locks(url: str) -> int:
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            return int(
                c.execute(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
                ).scalar()
            )
    finally:
        eng.dispose()


def test_postgres_stopped_under_load(tmp_path: Path, private_pg: PrivatePostgres) -> None:
    project = _project(tmp_path / "proj", private_pg.url)
    from loopml.config import load_config

    artifacts = load_config(project).artifacts_root
    port = free_port()
    err = open(tmp_path / "serve.err", "w")  # noqa: SIM115 - closed below
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "loopml.cli", "-c", str(project), "serve", "--no-auth"]
    proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=err, stderr=err, env=env)
    load = None
    try:
        deadline = time.time() + 60
        with httpx.Client() as client:  # one client: a new one per poll costs ~30 ms of CPU
            while True:
                assert proc.poll() is None, (tmp_path / "serve.err").read_text()[-2000:]
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                        break
                assert time.time() < deadline, "loopml serve did not become ready in 60 s"
                time.sleep(0.1)
        deadline = time.time() + 30
        while _advisory_locks(private_pg.url) != 1:  # the controller leads
            assert time.time() < deadline, "the controller never took its advisory lock"
            time.sleep(0.2)
        load = Load(port)
        time.sleep(1)  # answering under load before the outage
        down = time.monotonic()
        private_pg.stop("fast")
        time.sleep(OUTAGE_S)
        private_pg.start()
        up = time.monotonic()
        deadline = time.time() + 30
        while _advisory_locks(private_pg.url) != 1:  # the controller leads again
            assert time.time() < deadline, "the controller did not resume after the outage"
            time.sleep(0.2)
        resumed_s = time.monotonic() - up
        time.sleep(1)  # and after it: these answers must be logged too
        load.close()
        during = load.between(down, up)
        statuses = sorted({s for _, s, _ in load.answers})
        assert len(during) > 100, len(during)
        assert all(s == 200 for _, s, _ in during), [x for x in during if x[1] != 200][:5]
        assert statuses == [200], statuses
        assert httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200
    finally:
        if load is not None:
            load.close()
        if proc.poll() is None:
            stop(proc)
        err.close()
    log_text = (tmp_path / "serve.err").read_text()
    # paused, and said so once: one warning per polling loop when the outage starts, one line
    # when it ends, no traceback (it was one per watcher poll and per controller pass)
    assert "Traceback" not in log_text, log_text[-3000:]
    down = [ln for ln in log_text.splitlines() if "store unreachable: " in ln]
    back = [ln for ln in log_text.splitlines() if "store reachable again after " in ln]
    for says in ("serving from the cached traffic table", "the controller is paused"):
        assert len([ln for ln in down if says in ln]) == 1, down
    assert len(down) == len(back) <= 3, (down, back)  # the monitor's pass may fall in it too
    acked = [i for _, s, ids in load.answers if s == 200 for i in ids]
    logged = read_log(artifacts, "credit").column("_request_id").to_pylist()
    missing = set(acked) - set(logged)
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged predictions not logged"
    assert len(logged) == len(set(logged))
    print(
        f"\n{len(acked)} predictions acknowledged ({len(during)} during the {OUTAGE_S:g} s "
        f"outage), {len(logged)} logged, 0 lost; controller leads again {resumed_s:.1f} s "
        "after Postgres is back"
    )
