"""Retirement (expiry, idleness, never a champion without a replacement) and the rollout
store's guarantees, on SQLite and Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.control import Controller
from loopml.errors import ConflictError
from loopml.store import Store
from tests.control._log import Clock, make_config, register

DAY = 86400.0


@pytest.fixture
def world(tmp_path: Path, store_url: str):
    cfg = make_config(tmp_path, store_url, deploy={"expire_after": "90d", "idle_after": "30d"})
    store = Store(store_url)
    clock = Clock()
    yield cfg, store, clock
    store.close()


def test_expired_and_idle_versions_retire_with_alert(world) -> None:
    cfg, store, clock = world
    champ = register(store)
    store.endpoints.deploy("ep", champ, actor="test")
    expired = register(store, expires_at=clock() - 1)
    fresh = register(store, expires_at=clock() + DAY)
    ctl = Controller(cfg, store, clock=clock)
    ds = ctl.reconcile_once()
    assert [(d["action"], d["subject"]) for d in ds] == [
        ("status:retired", f"version:{expired['id']}")
    ]
    assert ds[0]["evidence"]["why"] == "expired"
    assert store.versions.get(expired["id"])["status"] == "retired"
    assert store.versions.get(fresh["id"])["status"] == "candidate"
    alerts = store.monitoring.alerts(rule="retirement")
    assert [a["subject"] for a in alerts] == [f"version:{expired['id']}"]
    # 31 days later the never-deployed candidate is idle (and the champion is still serving)
    clock.advance(31 * DAY - (clock() - fresh["created_at"]) + 1)
    fresh_expiry = store.versions.get(fresh["id"])["expires_at"]
    assert fresh_expiry < clock()  # it also expired meanwhile; expiry is reported first
    ds = ctl.reconcile_once()
    assert [d["subject"] for d in ds] == [f"version:{fresh['id']}"]
    assert store.endpoints.get("ep")["champion_id"] == champ["id"]
    ctl.close()


def test_idle_without_expiry(world, tmp_path: Path) -> None:
    cfg, store, clock = world
    cfg = make_config(tmp_path, store.url, deploy={"expire_after": None, "idle_after": "30d"})
    champ = register(store)
    store.endpoints.deploy("ep", champ, actor="test")
    old = register(store)
    store.endpoints.deploy("ep", old, actor="test", shadow=True)
    store.endpoints.rollback("ep", actor="test")  # out of traffic from now on
    ctl = Controller(cfg, store, clock=clock)
    assert ctl.reconcile_once() == []  # not idle for long enough yet
    clock.t = store.versions.get(old["id"])["status_changed_at"] + 30 * DAY + 1
    ds = ctl.reconcile_once()
    assert [d["subject"] for d in ds] == [f"version:{old['id']}"]
    assert ds[0]["evidence"]["why"] == "idle"
    ctl.close()


def test_expired_champion_is_warned_not_retired(world) -> None:
    cfg, store, clock = world
    champ = register(store, expires_at=clock() - 1)
    store.endpoints.deploy("ep", champ, actor="test")
    ctl = Controller(cfg, store, clock=clock)
    ds = ctl.reconcile_once()
    assert [d["action"] for d in ds] == ["retire-warning"]
    assert "without a replacement" in ds[0]["reason"]
    assert store.versions.get(champ["id"])["status"] == "champion"
    assert ctl.reconcile_once() == []  # warned once a day
    clock.advance(DAY + 1)
    assert [d["action"] for d in ctl.reconcile_once()] == ["retire-warning"]
    ctl.close()


def test_one_active_rollout_per_endpoint_and_optimistic_updates(world) -> None:
    _cfg, store, clock = world
    a, b = register(store), register(store)
    ro = store.rollouts.start(endpoint="ep", candidate_id=a["id"], champion_id=None, at=clock())
    with pytest.raises(ConflictError, match="already has rollout"):
        store.rollouts.start(endpoint="ep", candidate_id=b["id"], champion_id=None, at=clock())
    moved = store.rollouts.update(ro, at=clock(), state="canary", step=0)
    with pytest.raises(ConflictError, match="changed while"):
        store.rollouts.update(ro, at=clock(), state="rolled_back")  # a stale read loses
    assert store.rollouts.get(ro["id"])["state"] == moved["state"] == "canary"
