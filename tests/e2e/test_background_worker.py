"""``loopml serve`` runs the monitor and the controller in one child process at a lower CPU
priority (``serve.background: process``, ``loopml.background_worker``): real ``loopml serve``
processes on loopback, read through ``/proc``.

- the child is the server's, niced by ``serve.background_nice`` (so is the log-compaction
  worker), and it is the child that monitors (windows appear) and leads (the controller's
  lease and decisions name its pid); a graceful stop ends it and gives up leadership;
- a child killed with SIGKILL is reported in the server's log and replaced, and the new
  child takes over the dead one's leases at once; SIGKILL of the server ends the children;
- ``serve.background: thread`` keeps both loops in threads of the server, as before.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from loopml.background_worker import RESTART_EVERY, restart_delay
from loopml.control import request_retrain
from loopml.server import free_port
from tests._helpers.process import stop
from tests.e2e import _loop as L
from tests.replicas import _cluster as C

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

STARTED = re.compile(r"run in background process (\d+) \(nice \+(\d+)\)")
RESTARTED = re.compile(r"Started a new background process \(pid (\d+), nice \+(\d+)\)")


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state first), or None once gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields  # a zombie is gone too


def _ppid(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def _nice(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[16]) if fields else None  # field 19 of proc(5)


def _spawned_children(pid: int) -> list[int]:
    """The server's multiprocessing children (background process, compaction worker)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and _ppid(int(d.name)) == pid:
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmd:
                out.append(int(d.name))
    return out


def _serve(root: Path) -> C.Replica:
    port = free_port()
    log = root.parent / f"serve-{port}.log"
    proc = subprocess.Popen(
        [C.LOOPML, "serve", "-c", str(root), "--port", str(port), "--no-auth"],
        cwd=root,
        env=C._env(),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    replica = C.Replica(proc, f"http://127.0.0.1:{port}", log)
    C.wait_ready([replica])
    return replica


def _logged(server: C.Replica, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
    return L.wait_for(
        f"{pattern.pattern!r} in the server's log",
        lambda: pattern.search(server.log.read_text(errors="replace")),
        timeout,
        state=lambda: server.log.read_text(errors="replace")[-2000:],
    )


def _pid_of(holder: str | None) -> int | None:
    return int(holder.split(":")[1]) if holder else None


def test_the_monitor_and_the_controller_run_in_a_niced_child(project, store, versions):
    text = L.config_text().replace("  auth: false\n", "  auth: false\n  background_nice: 7\n")
    (project / "loopml.yaml").write_text(text)
    start = max((d["id"] for d in store.decisions.list(limit=1)), default=0)
    server = _serve(project)
    try:
        child, nice = map(int, _logged(server, STARTED, 30).groups())
        base = _nice(server.pid)
        assert base is not None and base <= 12  # room for +7 below the kernel's 19
        assert nice == 7 and _ppid(child) == server.pid
        # (the child lowers its own priority first thing once it has started)
        L.wait_for(
            "the child's nice", lambda: _nice(child) == base + 7, 30, state=lambda: _nice(child)
        )
        with L.Client(server.url):
            L.wait_for(
                "a monitoring window of the champion",
                lambda: L.windows(store, versions["champion"]),
                60,
            )
            L.wait_for(
                "the child to lead",
                lambda: _pid_of(store.locks.holder("controller")) == child,
                30,
                state=lambda: store.locks.holder("controller"),
            )
            request_retrain(store, L.ENDPOINT, actor="test", reason="background worker test")
            retrain = L.wait_for(
                "the controller to start the retraining",
                lambda: [d for d in L.actions(store, start) if d["action"] == "retrain"],
                60,
                state=lambda: [d["action"] for d in L.actions(store, start)],
            )[0]
        assert retrain["actor"] == "controller"
        assert _pid_of(retrain["evidence"]["controller"]) == child
        # the compaction worker (compact_every: 0.5s) is niced the same
        spawned = L.wait_for("the compaction worker", lambda: _spawned_children(server.pid), 30)
        assert child in spawned and len(spawned) == 2, spawned
        assert {_nice(p) for p in spawned} == {base + 7}
    finally:
        stop(server.proc)
    assert server.proc.returncode in (0, -signal.SIGTERM), server.log.read_text()[-3000:]
    assert _stat(child) is None
    assert store.locks.holder("controller") is None  # given up on a graceful stop
    assert "Traceback" not in server.log.read_text(errors="replace")


def test_a_killed_child_is_reported_and_replaced_and_a_killed_server_ends_its_children(
    project, store
):
    server = _serve(project)
    try:
        child = int(_logged(server, STARTED, 30).group(1))
        L.wait_for(
            "the child to lead",
            lambda: _pid_of(store.locks.holder("controller")) == child,
            30,
            state=lambda: store.locks.holder("controller"),
        )
        os.kill(child, signal.SIGKILL)
        died = re.compile(rf"ERROR loopml.serve: The background process \(pid {child}\b.*")
        line = _logged(server, died, 10).group(0)
        assert "died with signal SIGKILL" in line and "no monitoring passes" in line, line
        # the next child a second after the death (it ran a while), not after a fixed 30 s
        died_at = time.monotonic()
        new, nice = map(int, _logged(server, RESTARTED, 45).groups())
        assert time.monotonic() - died_at < 10, "the new child came later than restart_delay"
        base = _nice(server.pid)
        assert base is not None and base <= 9
        assert new != child and nice == 10 and _ppid(new) == server.pid
        L.wait_for(
            "the new child's nice", lambda: _nice(new) == base + 10, 30, state=lambda: _nice(new)
        )
        # the dead child's lease (5 minutes on SQLite) does not hold the new one up
        L.wait_for(
            "the new child to lead",
            lambda: _pid_of(store.locks.holder("controller")) == new,
            15,
            state=lambda: store.locks.holder("controller"),
        )
        rows = L.features(3, np.random.default_rng(0)).to_dict("records")
        answer = httpx.post(
            f"{server.url}/v1/endpoints/{L.ENDPOINT}/predict", json={"rows": rows}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        spawned = _spawned_children(server.pid)
        server.proc.kill()
        server.proc.wait(10)
        t0 = time.monotonic()
        L.wait_for(
            "the children to end with the server",
            lambda: all(_stat(p) is None for p in spawned),
            5,
            state=lambda: {p: _stat(p) for p in spawned},
        )
        print(f"\nchildren {spawned} ended {time.monotonic() - t0:.1f} s after the server")
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


def test_background_thread_keeps_the_monitor_and_the_controller_in_the_server(
    project, store, versions, caplog
):
    """``serve.background: thread`` (embedding, debugging): both loops are threads of the
    serving process, which leads, and no background process is started."""
    text = L.config_text().replace("  auth: false\n", "  auth: false\n  background: thread\n")
    (project / "loopml.yaml").write_text(text)
    caplog.set_level(logging.INFO, logger="loopml.serve")
    with L.server(project) as (url, _app), L.Client(url):
        names = {t.name for t in threading.enumerate()}
        assert {"loopml-monitor", "loopml-controller"} <= names, names
        L.wait_for(
            "the server to lead",
            lambda: _pid_of(store.locks.holder("controller")) == os.getpid(),
            30,
            state=lambda: store.locks.holder("controller"),
        )
        L.wait_for(
            "a monitoring window of the champion",
            lambda: L.windows(store, versions["champion"]),
            60,
        )
    assert "models ready" in caplog.text  # the server's own lines are seen here ...
    assert "background process" not in caplog.text  # ... and none says a child started


HANDED = re.compile(r"Background process (\d+) hands over to a fresh one: (\d+) MB resident")
IN_PLACE = re.compile(r"Started background process (\d+) in place of one that handed over")


def test_a_child_whose_memory_grew_hands_over_to_a_fresh_one(project, store, versions):
    # a budget no pass can keep: every child hands over after a few passes, as one whose
    # memory grew by 10% would after hours; so does the compaction worker
    text = L.config_text().replace(
        "  auth: false\n", "  auth: false\n  background_max_growth: 0.000001\n"
    )
    (project / "loopml.yaml").write_text(text)
    server = _serve(project)
    try:
        first = int(_logged(server, STARTED, 30).group(1))
        with L.Client(server.url):
            L.wait_for(
                "a monitoring window of the champion",
                lambda: L.windows(store, versions["champion"]),
                60,
            )
            gone, _ = map(int, _logged(server, HANDED, 60).groups())
            assert gone == first
            new = int(_logged(server, IN_PLACE, 30).group(1))
            assert new != first and _ppid(new) == server.pid
            L.wait_for("the first child to end", lambda: _stat(first) is None, 30)
            # the fresh child leads at once (the old one gave its lease up) and monitors
            L.wait_for(
                "a fresh child to lead",
                lambda: _pid_of(store.locks.holder("controller")) not in (None, first),
                30,
                state=lambda: store.locks.holder("controller"),
            )
            _logged(server, re.compile(r"compactor's memory grew past"), 60)
            rows = L.features(3, np.random.default_rng(0)).to_dict("records")
            answer = httpx.post(
                f"{server.url}/v1/endpoints/{L.ENDPOINT}/predict", json={"rows": rows}, timeout=10
            )
            assert answer.status_code == 200, answer.text
    finally:
        stop(server.proc)
    text = server.log.read_text(errors="replace")
    assert server.proc.returncode in (0, -signal.SIGTERM), text[-3000:]
    assert "died with" not in text and "Traceback" not in text, text[-3000:]
    assert "handover" not in text.lower() or "Could not" not in text, text[-3000:]
    assert not Path(f"/tmp/loopml-background-{server.pid}.json").exists()


def test_a_child_that_keeps_dying_at_its_start_is_restarted_ever_less_often():
    """A crash at start backs off to RESTART_EVERY; a death after a long run is followed at
    once (a second) by the next child."""
    assert restart_delay(0) == 1.0  # it ran a while
    delays = [restart_delay(k) for k in range(1, 9)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert max(delays) == RESTART_EVERY
