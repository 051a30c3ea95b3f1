"""Every store write that records a decision returns that decision's id, so a caller reports
the decision it made instead of re-reading "the latest decision with this action" (which a
concurrent writer may have replaced). Real SQLite files and the real Postgres."""

from __future__ import annotations

from loopml.store import Store
from loopml.store.rows import RolloutState, VersionRow

# the least a version needs to be registered (none of it matters to these tests)
BARE = {"model": "m", "status": "candidate", "format": "skops", "artifact": "a" * 64}
EMPTY = ("signature", "metrics", "snapshots", "manifest")


def _version(store: Store) -> VersionRow:
    run = store.runs.start(project="p", model="m", params={}, snapshots={}, python="3", packages={})
    return store.versions.register(
        run_id=run, slices=[], gates=[], **BARE, **{k: {} for k in EMPTY}
    )


def _action(store: Store, decision_id: int | None) -> str:
    assert decision_id is not None
    row = store.decisions.get(decision_id)
    assert row is not None
    return row["action"]


def test_traffic_changes_return_the_decision_they_wrote(store_url):
    """Guards against a traffic change whose caller cannot tell which decision it wrote."""
    store = Store(store_url)
    a, b = _version(store), _version(store)
    first = store.endpoints.deploy("e", a, actor="t")
    assert _action(store, first["decision_id"]) == "deploy"
    canary = store.endpoints.deploy("e", b, actor="t", canary=10)
    # another writer records a decision of the same action in between
    store.decisions.record(actor="x", action="canary", subject="endpoint:other", reason="r")
    assert _action(store, canary["decision_id"]) == "canary"
    assert (store.decisions.get(canary["decision_id"] or 0) or {}).get("subject") == "endpoint:e"
    frozen = store.endpoints.set_frozen("e", True, actor="t", reason="r")
    assert _action(store, frozen["decision_id"]) == "freeze"
    store.endpoints.set_frozen("e", False, actor="t", reason="r")
    again = store.endpoints.deploy("e", store.versions.get(a["id"]), actor="t")
    assert again["decision_id"] is None  # already the champion: nothing changed or recorded
    back = store.endpoints.rollback("e", actor="t")
    assert _action(store, back["decision_id"]) == "rollback"


def test_kill_switch_and_retirement_return_their_status_decision(store_url):
    """Guards against the controller reporting another version's retirement as its own."""
    store = Store(store_url)
    a, b, c = _version(store), _version(store), _version(store)
    store.endpoints.deploy("e", a, actor="t")
    store.endpoints.deploy("e", b, actor="t", shadow=True)
    off = store.disable(b["id"], actor="ops", reason="bad")
    assert off.endpoints == ["e"] and _action(store, off.decision_id) == "status:disabled"
    gone = store.retire(c["id"], actor="ops", reason="old")
    assert gone.endpoints == [] and _action(store, gone.decision_id) == "status:retired"
    assert (store.decisions.get(gone.decision_id or 0) or {}).get("subject") == f"version:{c['id']}"


def test_rollout_states_are_stored_as_their_strings(store_url):
    """Guards against a state enum that would change what the rollouts table holds."""
    store = Store(store_url)
    a, b = _version(store), _version(store)
    store.endpoints.deploy("e", a, actor="t")
    ro = store.rollouts.start(endpoint="e", candidate_id=b["id"], champion_id=a["id"], at=1.0)
    assert ro["state"] is RolloutState.SHADOW and ro["state"] == "shadow"
    ro = store.rollouts.update(ro, at=2.0, state=RolloutState.CANARY, step=0)
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT state FROM rollouts").scalar()
    assert (type(stored), stored) == (str, "canary")
    assert [r["id"] for r in store.rollouts.active("e")] == [ro["id"]]
