"""The replica whose controller leads killed with ``kill -9`` in the middle of a rollout it
started: another of the three replicas (behind nginx, on one Postgres database) takes the
leadership (the dead session's advisory lock is released by Postgres) and finishes the
rollout. The rollout is driven by real traffic and labels through nginx. Each replica's
controller runs in its background process (``loopml.background_worker``), which ends with
its server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e import _loop as L
from tests.replicas import _cluster as C

# three servers on a shared 2-core machine beside the rest of the suite: more than the
# suite's 300 s per test may be needed when the box is busy
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FINAL = ("promote", "rollback", "rollout-inconclusive", "rollout-aborted")


@pytest.fixture
def root(tmp_path: Path):
    with C.fresh_database() as url:
        yield C.project(tmp_path / "proj", url, tmp_path / "artifacts", L.config_text())


def _holder_pid(decision: dict) -> int:
    """The pid of the controller that made ``decision`` (its holder is host:pid:nonce), or 0
    for a decision that does not name one."""
    holder = decision["evidence"].get("controller")
    return int(str(holder).split(":")[-2]) if holder else 0


def _replica_of(controller: int) -> int:
    """The ``loopml serve`` process whose controller runs as pid ``controller``: the parent of
    its background process."""
    stat = Path(f"/proc/{controller}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _lock_backend(store) -> int | None:
    """The Postgres backend pid holding the controller's advisory lock, or None."""
    from sqlalchemy import text

    from loopml.control.leader import PG_KEY

    hi, lo = (PG_KEY >> 32) & 0xFFFFFFFF, PG_KEY & 0xFFFFFFFF
    with store.engine.connect() as c:
        return c.execute(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = :hi AND objid = :lo"
            ),
            {"hi": hi, "lo": lo},
        ).scalar()


def test_a_killed_leader_hands_its_rollout_to_another_replica(root: Path):
    from loopml.config import load_config
    from loopml.control import request_retrain
    from loopml.store import Store

    champion = L.train_version(root)["id"]
    store = Store(load_config(root).store_url)
    C.deploy(root, champion)
    try:
        with C.cluster(root, 3) as (url, replicas), L.Client(url, rows=10, rate=30) as client:
            by_pid = {r.pid: r for r in replicas}
            L.wait_for(
                "labelled rows of the champion in the log",
                lambda: L.judged_windows(store, champion),
                120,
            )
            request_retrain(store, L.ENDPOINT, actor="test", reason="replica leader test")
            started = L.wait_for(
                "the leader to start a rollout (shadow)",
                lambda: [d for d in L.actions(store) if d["action"] == "shadow"],
                180,
                state=lambda: [(d["action"], d["reason"]) for d in L.actions(store)],
            )[0]
            # the shadow deploy is recorded by the store; the same pass's retrain-passed
            # decision names the controller that made it
            passed = [d for d in L.actions(store) if d["action"] == "retrain-passed"][-1]
            leader = _holder_pid(passed)
            server = _replica_of(leader)
            assert server in by_pid, (leader, server, list(by_pid))
            before = _lock_backend(store)
            assert before is not None
            os.kill(server, signal.SIGKILL)
            killed_at = time.time()
            L.wait_for(
                "another controller to hold the leader lock",
                lambda: _lock_backend(store) not in (None, before),
                30,
                every=0.05,
            )
            took_over = time.time() - killed_at
            by_pid[server].proc.wait(10)
            after = L.wait_for(
                "another replica's controller to act after the kill",
                lambda: [
                    d
                    for d in L.actions(store, started["id"])
                    if "controller" in d["evidence"] and d["at"] > killed_at
                ],
                120,
            )[0]
            successor = _replica_of(_holder_pid(after))
            final = L.wait_for(
                "the rollout to finish",
                lambda: [d for d in L.actions(store, started["id"]) if d["action"] in FINAL],
                180,
                state=lambda: [(d["action"], d["reason"]) for d in L.actions(store)],
            )[0]
            n = len(client.answers)
            L.wait_for("answers after the rollout", lambda: len(client.answers) > n + 10, 30)
        story = L.actions(store)
    finally:
        store.close()
    print(
        f"\nreplica {server} (leader pid {leader}) killed {killed_at - started['at']:.1f} s "
        f"after its controller started the rollout; another session held the leader lock "
        f"{took_over * 1000:.0f} ms after the "
        f"kill; pid {_holder_pid(after)} acted {after['at'] - killed_at:.1f} s after the kill "
        f"({after['action']}); the rollout ended with {final['action']} "
        f"{final['at'] - killed_at:.1f} s after the kill; {len(client.answers)} requests through "
        f"nginx, {len(client.failures())} failed\n"
        + "\n".join(
            f"  {d['at'] - started['at']:+6.1f}s pid {_holder_pid(d) or '-':>7} "
            f"{d['action']:<16} {d['reason'][:90]}"
            for d in story
        )
    )
    assert successor in by_pid and successor != server
    assert _holder_pid(final) not in (0, leader)
    assert final["action"] in FINAL
    assert not client.failures(), client.failures()[:3]
