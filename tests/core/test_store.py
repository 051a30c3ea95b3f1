"""The metadata store on real SQLite files and the real Postgres."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from tests._helpers.store import version_row

from loopml.errors import ConflictError, StoreVersionError, UsageError
from loopml.store import Store
from loopml.store.db import HEAD, current_revision, make_engine


def _version(store: Store, model: str = "m", status: str = "candidate") -> dict:
    return version_row(store, model=model, status=status, snapshots={"train": "h"})


def test_fresh_database_is_migrated_to_head(store_url):
    store = Store(store_url)
    assert current_revision(store.engine) == HEAD
    v = _version(store)
    assert (v["id"], v["number"], v["status"]) == (1, 1, "candidate")
    assert _version(store)["number"] == 2


def test_newer_database_is_refused_and_left_unchanged(store_url):
    store = Store(store_url)
    _version(store)
    with store.engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    store.close()
    with pytest.raises(StoreVersionError, match="newer loopml"):
        Store(store_url)
    engine = make_engine(store_url)
    assert current_revision(engine) == "9999_future"
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM versions")).scalar() == 1


def test_concurrent_promotions_exactly_one_wins(store_url):
    store = Store(store_url)
    champion, a, b = _version(store), _version(store), _version(store)
    store.endpoints.deploy("ep", champion, actor="t")
    lock = store.endpoints.get("ep")["lock"]
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def promote(vid: int) -> None:
        barrier.wait()
        try:
            store.endpoints.promote("ep", vid, actor=f"t{vid}", expected_lock=lock)
            outcomes.append(vid)
        except ConflictError as e:
            outcomes.append(e)

    threads = [threading.Thread(target=promote, args=(v["id"],)) for v in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [o for o in outcomes if isinstance(o, int)]
    losses = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(wins) == 1 and len(losses) == 1
    assert "changed while this promote was being made" in str(losses[0])
    ep = store.endpoints.get("ep")
    assert ep["champion_id"] == wins[0]
    assert store.versions.get(wins[0])["status"] == "champion"
    loser = a["id"] if wins[0] == b["id"] else b["id"]
    assert store.versions.get(loser)["status"] == "candidate"


def test_version_status_optimistic_lock(store_url):
    store = Store(store_url)
    v = _version(store)
    store.versions.set_status(v["id"], "retired", actor="a", reason="r", expected_lock=v["lock"])
    with pytest.raises(ConflictError):
        store.versions.set_status(
            v["id"], "disabled", actor="b", reason="r", expected_lock=v["lock"]
        )
    assert store.versions.get(v["id"])["status"] == "retired"


def test_traffic_changes_history_and_decisions(store_url):
    store = Store(store_url)
    v1, v2, v3 = _version(store), _version(store), _version(store)
    store.endpoints.deploy("ep", v1, actor="alice", reason="first")
    t_after_first = time.time()
    time.sleep(0.01)
    store.endpoints.deploy("ep", store.versions.get(v2["id"]), actor="bob", canary=10)
    store.endpoints.deploy("ep", store.versions.get(v3["id"]), actor="bob", shadow=True)
    ep = store.endpoints.get("ep")
    assert (ep["champion_id"], ep["canary_id"], ep["canary_weight"]) == (v1["id"], v2["id"], 10.0)
    assert ep["shadows"] == [{"version_id": v3["id"], "fraction": 1.0}]
    assert [store.versions.get(v["id"])["status"] for v in (v1, v2, v3)] == [
        "champion",
        "canary",
        "shadow",
    ]
    # which version served at a time in the past
    [then] = store.endpoints.history("ep", at=t_after_first)
    assert then["traffic"]["champion"] == v1["id"] and then["traffic"]["canary"] is None
    # rollback drops canary and shadows; every change is in the audit log with before/after
    store.endpoints.rollback("ep", actor="carol", reason="guard breach")
    ep = store.endpoints.get("ep")
    assert ep["canary_id"] is None and ep["shadows"] == []
    assert store.versions.get(v2["id"])["status"] == "candidate"
    d = store.decisions.list(action="rollback")[0]
    assert (
        d["actor"] == "carol" and d["before"]["canary"] == v2["id"] and d["after"]["canary"] is None
    )


def test_traffic_change_returns_the_id_of_its_own_decision(store_url):
    store = Store(store_url)
    v1, v2 = _version(store), _version(store)
    first = store.endpoints.deploy("ep", v1, actor="alice", reason="first")
    # another writer records a change of the same kind right after: the id still finds ours
    store.decisions.record(
        actor="bob", action="deploy", subject="endpoint:ep", endpoint="ep", reason="other"
    )
    mine = store.decisions.get(first["decision_id"])
    assert mine is not None and (mine["actor"], mine["reason"]) == ("alice", "first")
    canary = store.endpoints.deploy("ep", store.versions.get(v2["id"]), actor="carol", canary=5)
    back = store.endpoints.rollback("ep", actor="dan", reason="breach")
    assert [store.decisions.get(c["decision_id"])["action"] for c in (canary, back)] == [
        "canary",
        "rollback",
    ]


def test_kill_switch_falls_back_to_previous_champion_or_empties(store_url):
    store = Store(store_url)
    v1, v2 = _version(store), _version(store)
    store.endpoints.deploy("ep", v1, actor="t")
    store.endpoints.promote("ep", v2["id"], actor="t")
    store.disable(v2["id"], actor="ops", reason="bad outputs")
    ep = store.endpoints.get("ep")
    assert ep["champion_id"] == v1["id"]
    assert store.versions.get(v2["id"])["status"] == "disabled"
    store.disable(v1["id"], actor="ops", reason="also bad")
    assert store.endpoints.get("ep")["champion_id"] is None
    with pytest.raises(ConflictError, match=r"cannot be deployed: version .* by ops: also bad"):
        store.endpoints.deploy("ep", store.versions.get(v1["id"]), actor="t")


def test_frozen_endpoint_refuses_automation(store_url):
    store = Store(store_url)
    v1, v2 = _version(store), _version(store)
    store.endpoints.deploy("ep", v1, actor="t")
    store.endpoints.set_frozen("ep", True, actor="ops", reason="incident")
    with pytest.raises(ConflictError, match="frozen"):
        store.endpoints.deploy("ep", store.versions.get(v2["id"]), actor="controller", canary=5)
    store.endpoints.set_frozen("ep", False, actor="ops", reason="over")
    store.endpoints.deploy("ep", store.versions.get(v2["id"]), actor="controller", canary=5)


def test_api_keys_are_hashed_and_revocable(store_url):
    store = Store(store_url)
    key, rec = store.keys.create("deployer", name="ci")
    assert store.keys.authenticate(key)["role"] == "deployer"
    assert store.keys.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    with store.engine.connect() as c:
        stored = c.execute(text("SELECT hash FROM api_keys")).scalar()
    assert key not in stored and len(stored) == 64
    store.keys.revoke(rec["id"])
    assert store.keys.authenticate(key) is None
    with pytest.raises(UsageError, match="roles are viewer"):
        store.keys.create("god")


def test_lease_lock_single_holder(store_url):
    store = Store(store_url)
    assert store.locks.acquire("controller", "a", ttl=30)
    assert not store.locks.acquire("controller", "b", ttl=30)
    assert store.locks.acquire("controller", "a", ttl=30)  # renew
    store.locks.release("controller", "a")
    assert store.locks.acquire("controller", "b", ttl=0.05)
    time.sleep(0.1)
    assert store.locks.acquire("controller", "a", ttl=30)  # b's lease expired


def test_leases_of_a_dead_process_can_be_expired_at_once(store_url):
    """A restarted background process takes over its dead predecessor's leases without
    waiting out their ttl, and only those (a prefix with LIKE wildcards matches literally)."""
    store = Store(store_url)
    assert store.locks.acquire("controller", "h_1:42:ab", ttl=300)
    assert store.locks.acquire("monitor", "h_1:42:cd", ttl=600)
    assert store.locks.acquire("other", "h_1:420:ef", ttl=600)
    assert store.locks.acquire("fourth", "hx1:42:ef", ttl=600)
    assert store.locks.expire("h_1:42:") == 2
    assert store.locks.holder("controller") is None
    assert store.locks.holder("controller", expired=True) == "h_1:42:ab"
    assert store.locks.acquire("controller", "h_1:43:gh", ttl=300)
    assert store.locks.acquire("monitor", "h_1:43:gh", ttl=600)
    assert not store.locks.acquire("other", "h_1:43:gh", ttl=600)
    assert not store.locks.acquire("fourth", "h_1:43:gh", ttl=600)


def test_direct_creation_matches_the_replayed_migrations(store_url, tmp_path, request):
    """A new database is created from schema.py; replaying the migrations must build the same
    schema (tables, columns, types, nullability, indexes, keys), per Alembic's own diff."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from loopml.store.db import migrate
    from loopml.store.tables import metadata

    direct = make_engine(store_url)
    assert migrate(direct) is None and current_revision(direct) == HEAD
    replay_url = (
        f"sqlite:///{tmp_path / 'replayed.db'}"
        if store_url.startswith("sqlite")
        else request.getfixturevalue("pg_url2")
    )
    replayed = make_engine(replay_url)
    assert migrate(replayed, replay=True) is None and current_revision(replayed) == HEAD
    for engine in (direct, replayed):
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
            assert sorted(inspect(conn).get_table_names()) == sorted(
                [*metadata.tables, "alembic_version"]
            )


def test_older_database_is_upgraded_with_its_rows(store_url):
    """A store at the first revision is upgraded to HEAD on open, keeping what it holds."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    import loopml.store.db as db

    engine = make_engine(store_url)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(
            text(
                "INSERT INTO snapshots (hash, source, rows, columns, created_at) "
                "VALUES ('h1', 'data.parquet', 3, '[]', 0)"
            )
        )
    assert current_revision(engine) == "0001"
    store = Store(store_url)
    assert current_revision(store.engine) == HEAD
    with store.engine.connect() as c:
        assert c.execute(text("SELECT hash FROM snapshots")).scalars().all() == ["h1"]
