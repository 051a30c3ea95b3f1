"""Chaos: ``kill -9`` of the acting controller in the middle of a rollout. Two controller
processes run against one store (SQLite: the lease, shortened to 2 s; Postgres, a private
cluster: the advisory lock); the test drives a virtual clock and writes the traffic each step
needs. After the kill the other controller takes over, records ``rollout-resumed`` naming both
controllers, and the rollout goes on from its stored state to ``promoted``: no step lost or
done twice, no decision lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from loopml.control import Controller
from loopml.control import rollout as R
from loopml.store import Store
from tests.control._log import Clock, canary_period, make_config, register, write_pairs

STEP = 700.0  # past the 10-minute shadow and step durations of make_config
ROOT = Path(__file__).resolve().parents[2]


class FileClock(Clock):
    """The virtual clock, shared with the controller processes through a file."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._write()

    def advance(self, seconds: float) -> float:
        super().advance(seconds)
        self._write()
        return self.t

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(repr(self.t))
        os.replace(tmp, self.path)


def _spawn(tmp_path: Path, url: str, holder: str, clock: FileClock, ttl: float):
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
    script = Path(__file__).with_name("controller_proc.py")
    args = [str(tmp_path), url, holder, str(clock.path), str(ttl)]
    proc = subprocess.Popen([sys.executable, str(script), *args], env=env, cwd=ROOT)
    return proc


def _lines(tmp_path: Path, holder: str) -> list[dict]:
    path = tmp_path / f"{holder}.log"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _wait(what: str, check, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _decisions(store: Store) -> list[dict]:
    return [
        d
        for d in store.decisions.list(endpoint="ep", limit=500)[::-1]
        if not d["action"].startswith("status:")
    ]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'loopml.db'}"
    return request.getfixturevalue("private_pg").url


@pytest.mark.slow
def test_kill_9_of_the_acting_controller_mid_rollout(tmp_path: Path, store_url: str) -> None:
    cfg = make_config(tmp_path, store_url)
    store = Store(store_url)
    champ = register(store)["id"]
    store.endpoints.deploy("ep", store.versions.get(champ), actor="test")
    cand = register(store)["id"]
    clock = FileClock(tmp_path / "clock")
    starter = Controller(cfg, store, clock=clock, holder="ctl-a")  # A starts the rollout
    R.start(starter.ctx, "ep", store.versions.get(cand))
    procs = {}
    try:
        procs["a"] = _spawn(tmp_path, store_url, "ctl-a", clock, ttl=2.0)
        _wait("ctl-a to lead", lambda: any(x.get("leading") for x in _lines(tmp_path, "ctl-a")))
        procs["b"] = _spawn(tmp_path, store_url, "ctl-b", clock, ttl=2.0)
        _wait("ctl-b to run", lambda: _lines(tmp_path, "ctl-b"))
        assert not any(x.get("leading") for x in _lines(tmp_path, "ctl-b"))
        # shadow -> canary 10 %, then 50 %, by A
        write_pairs(cfg.artifacts_root, "ep", champion=champ, shadow=cand, start=clock(), n=150)
        clock.advance(STEP)
        _wait("canary", lambda: store.endpoints.get("ep")["canary_weight"] == 10.0)
        canary_period(cfg, clock, champ, cand)
        clock.advance(STEP)
        _wait("step to 50 %", lambda: store.endpoints.get("ep")["canary_weight"] == 50.0)
        before = _decisions(store)
        # the next step is due: kill A as it starts the pass that takes it
        canary_period(cfg, clock, champ, cand)
        clock.advance(STEP)
        time.sleep(0.1)
        procs["a"].send_signal(signal.SIGKILL)
        procs["a"].wait(10)
        killed = time.monotonic()
        resumed = _wait(
            "ctl-b to resume the rollout",
            lambda: [d for d in _decisions(store) if d["action"] == "rollout-resumed"],
        )
        takeover_s = time.monotonic() - killed
        _wait("step to 100 %", lambda: store.endpoints.get("ep")["canary_weight"] == 100.0)
        canary_period(cfg, clock, champ, cand)
        clock.advance(STEP)
        _wait("promotion", lambda: store.endpoints.get("ep")["champion_id"] == cand)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(10)
    after = _decisions(store)
    # nothing lost: every decision taken before the kill is still there, in order
    assert [d["id"] for d in after[: len(before)]] == [d["id"] for d in before]
    actions = [d["action"] for d in after]
    assert actions.count("rollout-resumed") == 1, actions
    assert [a for a in actions if a != "rollout-resumed"] == [
        "deploy",
        "shadow",
        "canary",
        "rollout-step",
        "rollout-step",
        "promote",
    ], actions  # each step exactly once: none lost, none done twice
    (r,) = resumed
    assert r["evidence"]["previous_controller"] == "ctl-a"
    assert r["evidence"]["controller"] == "ctl-b" and "took over from ctl-a" in r["reason"]
    assert r["evidence"]["state"] == "canary"
    assert after[-1]["action"] == "promote" and after[-1]["id"] > r["id"]  # B promoted
    ep = store.endpoints.get("ep")
    assert (ep["champion_id"], ep["canary_id"], ep["previous_champion_id"]) == (cand, None, champ)
    assert store.rollouts.list(endpoint="ep")[0]["state"] == "promoted"
    assert not store.rollouts.active("ep")
    print(
        f"\ntakeover after kill -9: {takeover_s:.1f} s ({store_url.split(':')[0]}): {r['reason']}"
    )
    store.close()


def _fail_rollout_writes(store: Store, when: str | None) -> None:
    """A write failure inside the database (a SQLite trigger) on rollout updates matching
    ``when``; ``None`` removes it. The controller meets it as it would a disk or a connection
    lost in the middle of its transaction."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS fail_rollout")
        if when is not None:
            conn.exec_driver_sql(
                f"CREATE TRIGGER fail_rollout BEFORE UPDATE ON rollouts WHEN {when} "
                "BEGIN SELECT RAISE(ABORT, 'injected: the rollout row cannot be written'); END"
            )


def test_a_transition_whose_rollout_row_cannot_be_written_changes_no_traffic(
    tmp_path: Path,
) -> None:
    """A step's and a promotion's traffic change and the rollout row's update are one
    transaction: when the second fails, the first is undone (no traffic moved, no decision),
    and the next pass takes the step once. Written as two transactions, a controller killed
    between them left a promoted champion whose rollout still read "canary" (seen in CI)."""
    url = f"sqlite:///{tmp_path / 'loopml.db'}"
    cfg = make_config(tmp_path, url)
    store = Store(url)
    champ = register(store)["id"]
    store.endpoints.deploy("ep", store.versions.get(champ), actor="test")
    cand = register(store)["id"]
    clock = Clock()
    a = Controller(cfg, store, clock=clock, holder="ctl-a")
    R.start(a.ctx, "ep", store.versions.get(cand))
    write_pairs(cfg.artifacts_root, "ep", champion=champ, shadow=cand, start=clock(), n=150)
    clock.advance(STEP)
    assert [d["action"] for d in a.reconcile_once()] == ["canary"]
    for weight, when, action in [
        (50.0, "NEW.step = 1", "rollout-step"),
        (100.0, "NEW.step = 2", "rollout-step"),
        (100.0, "NEW.state = 'promoted'", "promote"),
    ]:
        canary_period(cfg, clock, champ, cand)
        clock.advance(STEP)
        ep, ro, decided = (
            store.endpoints.get("ep"),
            store.rollouts.active("ep")[0],
            _decisions(store),
        )
        _fail_rollout_writes(store, when)
        with pytest.raises(DBAPIError, match="injected"):
            a.reconcile_once()
        assert store.endpoints.get("ep") == ep  # the traffic change was undone with it
        now = store.rollouts.active("ep")[0]
        assert (now["state"], now["step"]) == (ro["state"], ro["step"])
        assert _decisions(store) == decided
        _fail_rollout_writes(store, None)
        assert [d["action"] for d in a.reconcile_once()] == [action]
        assert store.endpoints.get("ep")["canary_weight"] == (weight if action != "promote" else 0)
    ep = store.endpoints.get("ep")
    assert (ep["champion_id"], ep["canary_id"]) == (cand, None)
    assert store.rollouts.list(endpoint="ep")[0]["state"] == "promoted"
    steps = [d["action"] for d in _decisions(store)]
    assert steps == ["deploy", "shadow", "canary", "rollout-step", "rollout-step", "promote"]
    a.close()
    store.close()
