"""A monitoring pass and a log compaction over the same log run one at a time
(``loopml.memory.one_heavy_pass``): their memory peaks must not add up on the machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from loopml.background_worker import monitor_live
from loopml.config import load_config
from loopml.logs.compaction import compact_in_worker
from loopml.logs.layout import log_location, segments
from loopml.logs.predlog import PredictionLog
from loopml.memory import one_heavy_pass
from loopml.monitor.monitor_service import _loop
from loopml.store import Store
from tests.conftest import CONFIG, make_project
from tests.logs.test_compaction_chunks import _predict


def test_a_second_pass_waits_for_the_first_and_runs_anyway_after_its_wait(tmp_path):
    with one_heavy_pass(str(tmp_path), wait=1.0) as first:
        assert first
        t0 = time.monotonic()
        with one_heavy_pass(str(tmp_path), wait=0.3) as second:
            waited = time.monotonic() - t0
            assert not second and 0.3 <= waited < 1.0  # ran anyway, without the lock
    with one_heavy_pass(str(tmp_path), wait=0.0) as third:
        assert third  # released with the block
    with one_heavy_pass(None, wait=5.0) as nowhere:
        assert not nowhere  # no spool: nothing to share, no waiting


def test_the_lock_of_a_killed_holder_is_free_at_once(tmp_path):
    code = (
        "import sys, time\n"
        "from loopml.memory import one_heavy_pass\n"
        "with one_heavy_pass(sys.argv[1], wait=5) as held:\n"
        "    print(held, flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "True"
        with one_heavy_pass(str(tmp_path), wait=0.2) as held:
            assert not held  # the other process holds it
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with one_heavy_pass(str(tmp_path), wait=0.0) as held:
            assert held
    finally:
        proc.kill()
        proc.wait()


def test_a_compaction_waits_for_a_monitoring_pass_over_the_same_log(tmp_path):
    with PredictionLog(tmp_path, durable=False) as log:
        for i in range(20):
            _predict(log, i, {"x": [float(i)]})
    assert segments(str(tmp_path), "predlog")
    done: dict[str, int] = {}
    with one_heavy_pass(str(tmp_path), wait=0.0) as held:  # as a monitoring pass holds it
        assert held
        worker = threading.Thread(target=lambda: done.update(compact_in_worker(tmp_path, 3600)))
        worker.start()
        worker.join(0.8)
        assert worker.is_alive() and not done
        assert segments(str(tmp_path), "predlog")  # nothing compacted meanwhile
    worker.join(10)
    assert done["rows"] == 20 and not segments(str(tmp_path), "predlog")


def test_a_monitoring_pass_waits_for_a_compaction_of_the_same_log(tmp_path):
    root = make_project(tmp_path / "proj", config=CONFIG + "monitor: {schedule: 0.2s}\n")
    cfg = load_config(root)
    spool = log_location(cfg).spool
    assert spool is not None
    Path(spool).mkdir(parents=True, exist_ok=True)
    store, stop, passes = Store(cfg.store_url), threading.Event(), []
    loop = threading.Thread(
        target=_loop,
        args=(cfg, store, stop, monitor_live(cfg), lambda: passes.append(time.monotonic())),
    )
    try:
        with one_heavy_pass(spool, wait=0.0) as held:  # as a compaction holds it
            assert held
            loop.start()
            time.sleep(1.0)  # five schedules of 0.2 s
            assert not passes
            released = time.monotonic()
        deadline = time.monotonic() + 10
        while not passes and time.monotonic() < deadline:
            time.sleep(0.05)
        assert passes and passes[0] >= released
    finally:
        stop.set()
        loop.join(30)
        store.close()
