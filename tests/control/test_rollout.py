"""The rollout state machine over a real store (SQLite and Postgres) and real Parquet logs,
driven by a fake clock: shadow -> canary steps -> champion, rollback, abort, freeze."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.control import Controller, start_rollout
from loopml.control import rollout as R
from loopml.control.samples import read_label_map, read_rows
from loopml.errors import ConflictError
from loopml.store import Store
from tests.control._log import (
    Clock,
    canary_period,
    make_config,
    register,
    write_pairs,
    write_rows,
)

STEP = 700.0  # just past the 10-minute shadow / step duration of make_config


@pytest.fixture
def setup(tmp_path: Path, store_url: str):
    cfg = make_config(tmp_path, store_url)
    store = Store(store_url)
    champ = register(store)
    store.endpoints.deploy("ep", champ, actor="test")
    cand = register(store)
    clock = Clock()
    ctl = Controller(cfg, store, clock=clock, holder="ctl-a")
    yield cfg, store, ctl, clock, champ["id"], cand["id"]
    ctl.close()
    store.close()


def _start(setup) -> dict:
    _cfg, store, ctl, _clock, _champ, cand = setup
    R.start(ctl.ctx, "ep", store.versions.get(cand))
    return store.rollouts.active("ep")[0]


def _through_shadow(setup) -> None:
    cfg, _store, ctl, clock, champ, cand = setup
    _start(setup)
    write_pairs(cfg.artifacts_root, "ep", champion=champ, shadow=cand, start=clock(), n=150)
    clock.advance(STEP)
    ds = ctl.reconcile_once()
    assert [d["action"] for d in ds] == ["canary"]
    q = ds[0]["evidence"]["quality"]
    assert q["paired_rows"] == 150 and q["rows"] == 150 and q["score"] == "error_rate"
    assert q["metric"] == "roc_auc" and "confidence sequence" in q["test"]
    assert "no probabilities" in q["note"]  # the logs carry none: the error rate stands in


def test_a_pass_reads_only_the_rows_new_since_the_last(setup) -> None:
    """Guards against every pass reading the whole rollout's log again (a cost growing with
    its age): the controller keeps what it read, reads only new parts, and sees the rows a
    fresh read sees."""
    cfg, _store, ctl, clock, champ, cand = setup
    ro = _start(setup)
    write_pairs(cfg.artifacts_root, "ep", champion=champ, shadow=cand, start=clock(), n=150)
    clock.advance(120)
    assert ctl.reconcile_once() == []
    memory = ctl.ctx.memories[ro["id"]]
    assert memory.rows.rows_read == 2 * 150 and memory.labels.rows_read == 150
    clock.advance(5)
    assert ctl.reconcile_once() == []
    assert ctl.ctx.memories[ro["id"]] is memory and memory.rows_read == 3 * 150
    write_pairs(cfg.artifacts_root, "ep", champion=champ, shadow=cand, start=clock(), n=50, seed=9)
    clock.advance(120)
    assert ctl.reconcile_once() == []
    assert memory.rows.rows_read == 2 * 200 and memory.labels.rows_read == 200
    start, now = ro["started_at"], clock()
    fresh = R.look(ctl.ctx, ro, now)  # the same memory: nothing new to read
    assert memory.rows_read == 3 * 200
    assert fresh.pairs.paired == 200 == len(read_label_map(ctl.ctx.root, "ep", start, now))
    assert len(read_rows(ctl.ctx.root, "ep", start, now)) == 2 * 200


def test_shadow_canary_steps_then_promote(setup) -> None:
    cfg, store, ctl, clock, champ, cand = setup
    ro = _start(setup)
    assert ro["state"] == "shadow" and store.versions.get(cand)["status"] == "shadow"
    # shadow held, but not yet long enough: nothing moves
    write_pairs(cfg.artifacts_root, "ep", champion=champ, shadow=cand, start=clock(), n=150)
    clock.advance(120)
    assert ctl.reconcile_once() == []
    clock.advance(STEP - 120)
    assert [d["action"] for d in ctl.reconcile_once()] == ["canary"]
    ep = store.endpoints.get("ep")
    assert (ep["canary_id"], ep["canary_weight"], ep["shadows"]) == (cand, 10.0, [])
    for weight in (50.0, 100.0):
        canary_period(cfg, clock, champ, cand)
        clock.advance(STEP)
        ds = ctl.reconcile_once()
        assert [d["action"] for d in ds] == ["rollout-step"]
        assert store.endpoints.get("ep")["canary_weight"] == weight
        assert ds[0]["evidence"]["last"]["verdict"]["breached"] is False
    canary_period(cfg, clock, champ, cand)
    clock.advance(STEP)
    ds = ctl.reconcile_once()
    assert [d["action"] for d in ds] == ["promote"]
    ep = store.endpoints.get("ep")
    assert (ep["champion_id"], ep["canary_id"], ep["previous_champion_id"]) == (cand, None, champ)
    assert store.rollouts.get(ro["id"])["state"] == "promoted"
    actions = [
        d["action"]
        for d in store.decisions.list(endpoint="ep")[::-1]
        if not d["action"].startswith("status:")
    ]
    assert actions == ["deploy", "shadow", "canary", "rollout-step", "rollout-step", "promote"]
    # with replicas, the audit log says which one's controller moved the traffic
    moved = [d for d in store.decisions.list(endpoint="ep") if d["action"] in ("canary", "promote")]
    assert {d["evidence"]["controller"] for d in moved} == {ctl.holder}


def test_rollout_started_by_hand_reports_the_decision_it_wrote(setup) -> None:
    cfg, store, _ctl, _clock, _champ, cand = setup
    [d] = start_rollout(cfg, store, "ep", store.versions.get(cand), actor="alice")
    ro = store.rollouts.active("ep")[0]
    assert (d["action"], d["rollout"], ro["candidate_id"]) == ("shadow", ro["id"], cand)
    assert store.decisions.get(d["id"])["actor"] == "alice"
    assert store.endpoints.get("ep")["shadows"] == [{"version_id": cand, "fraction": 1.0}]


def test_a_second_rollout_is_refused_without_mirroring_its_candidate(setup) -> None:
    """The shadow a rollout starts with and the rollout row are one transaction: refused
    because one is already in progress, it leaves no orphan shadow that nothing judges."""
    cfg, store, _ctl, _clock, _champ, cand = setup
    start_rollout(cfg, store, "ep", store.versions.get(cand), actor="alice")
    other = register(store)["id"]
    before = store.endpoints.get("ep")
    with pytest.raises(ConflictError, match="already has rollout"):
        start_rollout(cfg, store, "ep", store.versions.get(other), actor="bob")
    assert store.endpoints.get("ep") == before
    assert store.versions.get(other)["status"] == "candidate"
    assert [r["candidate_id"] for r in store.rollouts.list(endpoint="ep")] == [cand]


def test_step_waits_for_a_judged_batch(setup) -> None:
    """Regression: a step must not advance on time alone when too few rows arrived to judge it."""
    cfg, store, ctl, clock, champ, cand = setup
    _through_shadow(setup)
    canary_period(cfg, clock, champ, cand, n=40)  # below guards.min_samples
    clock.advance(STEP)
    assert ctl.reconcile_once() == []
    assert store.endpoints.get("ep")["canary_weight"] == 10.0


def test_bad_canary_rolled_back_in_the_pass_that_sees_it(setup) -> None:
    cfg, store, ctl, clock, champ, cand = setup
    _through_shadow(setup)
    # 40 points less accurate on the same rows: the paired test shows it at once
    canary_period(cfg, clock, champ, cand, n=210, accuracy=0.5)
    clock.advance(61)  # the rows span 60 s; the next pass after they are logged acts
    ds = ctl.reconcile_once()
    assert [d["action"] for d in ds] == ["rollback"]
    q = ds[0]["evidence"]["quality"]
    assert q["interval"][0] > q["margin"] and q["rows"] == 360
    assert store.versions.get(cand)["status"] == "rolled_back"
    assert ds[0]["evidence"]["controller"] == ctl.holder
    ep = store.endpoints.get("ep")
    assert (ep["champion_id"], ep["canary_id"], ep["shadows"]) == (champ, None, [])
    assert store.rollouts.list(endpoint="ep")[0]["state"] == "rolled_back"
    assert ctl.reconcile_once() == []  # nothing left to do


def test_one_breach_then_recovery_does_not_roll_back(setup) -> None:
    """k-consecutive: a single breached batch followed by a good one resets the streak."""
    cfg, store, ctl, clock, champ, cand = setup
    _through_shadow(setup)
    canary_period(cfg, clock, champ, cand, n=100, latency_ms=900)
    clock.advance(61)
    assert [d["action"] for d in ctl.reconcile_once()] == ["guard-breach"]
    canary_period(cfg, clock, champ, cand, n=100, seed=3)
    clock.advance(61)
    assert ctl.reconcile_once() == []
    assert store.rollouts.active("ep")[0]["breaches"] == 0
    assert store.endpoints.get("ep")["canary_id"] == cand


def test_slow_canary_without_labels_rolled_back(setup) -> None:
    cfg, _store, ctl, clock, _champ, cand = setup
    _through_shadow(setup)
    t = clock()
    write_rows(
        cfg.artifacts_root,
        "ep",
        version=cand,
        role="canary",
        start=t,
        n=220,
        latency_ms=900,
        labels=False,
    )
    clock.advance(61)
    ds = ctl.reconcile_once()
    assert ds[-1]["action"] == "rollback"
    assert set(ds[0]["evidence"]["verdict"]["checks"]) >= {"p99_ms", "error_rate"}


def _bad_shadow_pass(setup) -> None:
    """The candidate's shadow rows 0.6 accurate: the next pass after the shadow period rolls
    it back."""
    cfg, _store, ctl, clock, champ, cand = setup
    write_pairs(
        cfg.artifacts_root,
        "ep",
        champion=champ,
        shadow=cand,
        start=clock(),
        n=100,
        shadow_accuracy=0.6,
    )
    clock.advance(STEP)
    assert ctl.reconcile_once()[-1]["action"] == "rollback"


def test_bad_shadow_rolled_back(setup) -> None:
    _cfg, store, _ctl, _clock, champ, cand = setup
    _start(setup)
    _bad_shadow_pass(setup)
    ep = store.endpoints.get("ep")
    assert ep["shadows"] == [] and ep["champion_id"] == champ
    assert store.versions.get(cand)["status"] == "rolled_back"


def test_a_failed_rollout_leaves_the_experiments_deployed_beside_it(setup) -> None:
    """Rolling back the controller's candidate takes out that candidate only: a shadow and a
    canary a person deployed stay, with their status (the soak saw them dropped)."""
    _cfg, store, _ctl, _clock, champ, cand = setup
    theirs_shadow, theirs_canary = register(store), register(store)
    store.endpoints.deploy("ep", theirs_shadow, actor="alice", shadow=True)
    _start(setup)
    store.endpoints.deploy("ep", theirs_canary, actor="alice", canary=10)
    _bad_shadow_pass(setup)
    ep = store.endpoints.get("ep")
    assert [s["version_id"] for s in ep["shadows"]] == [theirs_shadow["id"]]
    assert (ep["champion_id"], ep["canary_id"]) == (champ, theirs_canary["id"])
    assert store.versions.get(cand)["status"] == "rolled_back"
    assert store.versions.get(theirs_shadow["id"])["status"] != "candidate"


def test_traffic_changed_by_hand_aborts(setup) -> None:
    _cfg, store, ctl, _clock, _champ, _cand = setup
    _through_shadow(setup)
    store.endpoints.rollback("ep", actor="cli:alice", reason="I do not like it")
    ds = ctl.reconcile_once()
    assert [d["action"] for d in ds] == ["rollout-aborted"]
    assert store.rollouts.list(endpoint="ep")[0]["state"] == "aborted"


def test_frozen_endpoint_untouched(setup) -> None:
    cfg, store, ctl, clock, champ, cand = setup
    _through_shadow(setup)
    store.endpoints.set_frozen("ep", True, actor="cli:alice", reason="incident")
    before = store.endpoints.get("ep")
    canary_period(cfg, clock, champ, cand, n=210, accuracy=0.5)
    clock.advance(STEP)
    assert ctl.reconcile_once() == []
    after = store.endpoints.get("ep")
    assert (after["canary_id"], after["canary_weight"], after["lock"]) == (
        before["canary_id"],
        before["canary_weight"],
        before["lock"],
    )
    store.endpoints.set_frozen("ep", False, actor="cli:alice", reason="over")
    assert ctl.reconcile_once()[-1]["action"] == "rollback"


def test_two_controllers_only_one_acts(setup) -> None:
    cfg, store, ctl, clock, champ, cand = setup
    other_store = Store(store.url)
    other = Controller(cfg, other_store, clock=clock, holder="ctl-b")
    try:
        _start(setup)
        write_pairs(cfg.artifacts_root, "ep", champion=champ, shadow=cand, start=clock(), n=150)
        clock.advance(STEP)
        assert ctl.reconcile_once() != []  # a leads
        canary_period(cfg, clock, champ, cand, n=210, accuracy=0.5)
        clock.advance(61)
        assert other.reconcile_once() == []  # b sees the breach but may not act
        assert store.endpoints.get("ep")["canary_id"] == cand
        ctl.close()  # a steps down: b takes over at once
        assert [d["action"] for d in other.reconcile_once()][-1] == "rollback"
        assert ctl.reconcile_once() == []  # and a is now the follower
    finally:
        other.close()
        other_store.close()


def test_background_loop_rolls_back_then_stops(setup) -> None:
    """What ``loopml serve`` runs: passes every interval in a thread until told to stop."""
    import threading
    import time

    cfg, store, ctl, clock, champ, cand = setup
    _through_shadow(setup)
    canary_period(cfg, clock, champ, cand, n=210, accuracy=0.5)
    clock.advance(61)
    stop = threading.Event()
    thread = threading.Thread(target=ctl.run_forever, args=(stop, 0.05))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while store.endpoints.get("ep")["canary_id"] is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.endpoints.get("ep")["canary_id"] is None
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and not ctl.leadership.holds()
