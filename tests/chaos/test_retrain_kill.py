"""Chaos: ``kill -9`` of the controller in the middle of a retraining. A real ``loopml control
--once`` process claims the request and trains with a recipe that blocks; the test kills its
process group once training has started. The controller that takes over (on Postgres, whose
advisory lock dies with the process) must not leave the request "running" for ever: a manual
request is queued again and trained; an automatic one ends as ``interrupted`` and its trigger
fires again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopml.config import load_config
from loopml.control import Controller, request_retrain
from tests.conftest import CONFIG, TRAIN_PY, make_project, run_project

ROOT = Path(__file__).resolve().parents[2]
SLOW = '''

def slow(X, y, params, seed=0):
    """Trains for ten minutes: long enough to be killed in the middle."""
    import pathlib
    import time

    pathlib.Path(__file__).with_name("training.started").touch()
    time.sleep(600)
'''
RETRAIN = {
    "manual": "retrain:\n  on: [manual]\n",
    "schedule": "retrain:\n  on: [schedule]\n  schedule: 1s\n  cooldown: 0s\n",
}


def _wait(what: str, check, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := check():
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.slow
@pytest.mark.parametrize("trigger", ["manual", "schedule"])
def test_kill_9_of_the_controller_mid_retraining(tmp_path: Path, pg_url: str, trigger: str) -> None:
    root = make_project(
        tmp_path / "proj", config=CONFIG + RETRAIN[trigger], store=pg_url, train_py=TRAIN_PY + SLOW
    )
    _cfg, store, result = run_project(root)
    store.endpoints.deploy("tiny", result.version, actor="test")
    yaml = root / "loopml.yaml"
    yaml.write_text(yaml.read_text().replace("train.py:train", "train.py:slow"))
    if trigger == "manual":
        request_retrain(store, "tiny", actor="alice", reason="new data")
    else:
        time.sleep(1.1)  # the schedule is due
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopml.cli", "-c", str(root), "control", "--once"],
        env=env,
        cwd=root,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait("training to start", (root / "training.started").exists)
        (req,) = store.rollouts.retrains("tiny", status="running")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    yaml.write_text(yaml.read_text().replace("train.py:slow", "train.py:train"))
    if trigger == "schedule":
        time.sleep(1.1)  # due again, counted from the interrupted run's start
    ctl = Controller(load_config(root), store, holder="ctl-b")
    ds = ctl.reconcile_once()
    actions = [d["action"] for d in ds]
    assert actions == ["retrain-interrupted", "retrain", "retrain-passed", "shadow"], actions
    d = ds[0]
    assert d["evidence"]["request"] == req["id"] and d["evidence"]["trigger"] == trigger
    assert d["evidence"]["previous_controller"] not in (None, "ctl-b")
    assert "was killed" in d["reason"] and f"request {req['id']}" in d["reason"]
    after = store.rollouts.retrain(req["id"])
    if trigger == "manual":  # asked for by someone: trained after all, by the new controller
        assert "queued again" in d["reason"]
        assert ds[1]["evidence"]["request"] == req["id"]
        assert (after["status"], after["outcome"]) == ("done", "rollout")
    else:  # automatic: ended as interrupted, and the trigger fired again
        assert "fires again" in d["reason"]
        assert (after["status"], after["outcome"]) == ("done", "interrupted")
        assert ds[1]["evidence"]["request"] != req["id"]
        assert not store.rollouts.failures_in_a_row("tiny")  # not a failure for the breaker
    assert store.rollouts.active("tiny")  # the new candidate is in its rollout
    assert not store.rollouts.retrains("tiny", status="running")
    ctl.close()
    store.close()
