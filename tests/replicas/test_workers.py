"""``loopml serve --workers N``: N worker processes of one server share its port (uvicorn's
supervisor binds it once), each building the whole app from loopml.yaml and writing its own
prediction-log segments (their names carry the worker's pid); the supervisor runs the one
background process (monitor and controller) of them all."""

from __future__ import annotations

import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from loopml.server import free_port
from tests._helpers.process import stop
from tests.e2e import _loop as L
from tests.replicas import _cluster as C

# three servers on a shared 2-core machine beside the rest of the suite: more than the
# suite's 300 s per test may be needed when the box is busy
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SEGMENT_PID = re.compile(r"seg-\d+-(\d+)-\d+")
BACKGROUND = re.compile(r"run in background process (\d+)")


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_workers_share_the_port_and_log_their_own_segments(tmp_path: Path):
    root = L.write_project(tmp_path / "proj", L.config_text())
    C.deploy(root, L.train_version(root)["id"])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [C.LOOPML, "serve", "-c", str(root), "--port", str(port), "--no-auth", "--workers", "2"],
        cwd=root,
        env=C._env(),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        C.wait_ready([C.Replica(proc, url, log)])
        rows = L.features(200, np.random.default_rng(3)).to_dict("records")
        # a connection of its own per request (no keep-alive): the kernel picks the worker. One
        # client for all of them: httpx.post builds a client, ~30 ms of CPU, per request.
        client = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))

        def one(row: dict) -> int:
            return client.post(
                f"{url}/v1/endpoints/{L.ENDPOINT}/predict", json={"rows": [row]}
            ).status_code

        # the second worker may still be loading its models: wait until both answer
        deadline = time.monotonic() + 60
        pids: set[int] = set()
        statuses: list[int] = []
        with client, ThreadPoolExecutor(8) as pool:
            while time.monotonic() < deadline:
                statuses += list(pool.map(one, rows))
                time.sleep(1.0)  # log segments roll every 0.5 s
                names = [p.name for p in (root / ".loopml").rglob("*seg-*")]
                pids = {int(m.group(1)) for n in names if (m := SEGMENT_PID.search(n))}
                if len(pids) >= 2:
                    break
        workers = {p: _ppid(p) for p in pids}
        print(
            f"\n--workers 2: {len(statuses)} requests; log segments of pids {workers} "
            f"(parent {proc.pid})"
        )
        assert set(statuses) == {200}, sorted(set(statuses))
        assert len(pids) == 2 and set(workers.values()) == {proc.pid}, (workers, proc.pid)
        # one background process (monitor, controller) for both workers, the supervisor's
        started = BACKGROUND.findall(log.read_text(errors="replace"))
        assert len(started) == 1 and _ppid(int(started[0])) == proc.pid, (started, proc.pid)
    finally:
        stop(proc)
    assert proc.returncode == 0, log.read_text(errors="replace")[-3000:]


def test_workers_below_one_is_a_usage_error(tmp_path: Path):
    root = L.write_project(tmp_path / "proj", L.config_text())
    out = subprocess.run(
        [C.LOOPML, "serve", "-c", str(root), "--no-auth", "--workers", "0"],
        cwd=root,
        env=C._env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "--workers must be 1 or more; got 0" in out.stderr + out.stdout
    assert "Traceback" not in out.stderr
