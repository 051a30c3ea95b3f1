"""Issue 14 defects 5 and 9: concurrent traffic changes are atomic with one revision check
and a true conflict message; endpoint names are checked at deploy with the log's rule."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest
import serve_helpers as h
from sqlalchemy import event

from loopml.errors import ConflictError, UsageError
from loopml.store import Store

pytestmark = pytest.mark.anyio


def _held(store: Store, endpoint: str, vid: int) -> tuple[bool, bool]:
    ep = store.endpoints.get(endpoint)
    return ep["canary_id"] == vid, any(s["version_id"] == vid for s in ep["shadows"])


def _true_conflict(message: str) -> None:
    nums = re.findall(r"revision (\d+)", message)
    assert len(nums) == 2 and nums[0] != nums[1], message


def test_deploy_taken_on_a_stale_read_conflicts(project, versions):
    """A canary deploy lands between a shadow deploy's read and its write: the shadow deploy
    used to win too, leaving one version as canary and as shadow; now it is refused (409)
    with two different revisions named, and nothing of it is written."""
    from loopml.config import load_config

    url = load_config(project).store_url
    a, b = Store(url), Store(url)
    vid = versions["spare"]
    version = a.versions.get(vid)
    state = threading.local()
    fired = []

    def between(conn, cursor, statement, params, context, many):
        # after the shadow deploy's first read of the endpoint, the other deploy runs whole
        first_read = statement.lstrip().upper().startswith("SELECT") and not fired
        if getattr(state, "armed", False) and first_read and "FROM endpoints" in statement:
            fired.append(True)
            b.endpoints.deploy("credit", b.versions.get(vid), actor="b", canary=10)

    event.listen(a.engine, "after_cursor_execute", between)
    state.armed = True
    try:
        with pytest.raises(ConflictError) as err:
            a.endpoints.deploy("credit", version, actor="a", shadow=True)
    finally:
        state.armed = False
        event.remove(a.engine, "after_cursor_execute", between)
    assert fired
    _true_conflict(str(err.value))
    assert _held(a, "credit", vid) == (True, False)
    assert a.versions.get(vid)["status"] == "canary"
    a.close()
    b.close()


async def test_concurrent_shadow_and_canary_deploys_over_the_api(settings, keys, store, versions):
    """20 trials of shadow + canary deploys of one version at once through the API: never both
    roles, statuses match roles, every 409 names two different revisions."""
    vid = versions["spare"]
    auth = h.bearer(keys["deployer"])
    seen = set()
    async with h.serving(settings) as (_, c):
        for _ in range(20):
            bodies = ({"version": vid, "shadow": True}, {"version": vid, "canary": 20})
            answers = await asyncio.gather(
                *(c.post("/v1/endpoints/credit/deploy", json=b, headers=auth) for b in bodies)
            )
            for r in answers:
                seen.add(r.status_code)
                assert r.status_code in (200, 409), r.text
                if r.status_code == 409:
                    _true_conflict(r.json()["error"])
            canary, shadow = _held(store, "credit", vid)
            assert not (canary and shadow)
            status = store.versions.get(vid)["status"]
            assert status == ("canary" if canary else "shadow" if shadow else "candidate")
            r = await c.post("/v1/endpoints/credit/rollback", json={}, headers=auth)
            assert r.status_code == 200, r.text
    assert 200 in seen


@pytest.mark.parametrize(
    "name", ["a b", "..", ".hidden", "é", "x'; DROP TABLE endpoints;--", "a/b", "", "x" * 129]
)
def test_endpoint_names_are_checked_at_deploy(store, versions, name):
    """Defect 9: such names were deployed, then refused by the log on every request."""
    with pytest.raises(UsageError, match="Endpoint names must") as err:
        store.endpoints.deploy(name, store.versions.get(versions["champion"]), actor="t")
    assert err.value.to_dict()["field"] == "endpoint"
    assert name not in {e["name"] for e in store.endpoints.list()}


async def test_bad_endpoint_name_over_the_api_is_a_4xx(settings, keys, versions):
    async with h.serving(settings) as (_, c):
        r = await c.post(
            "/v1/endpoints/a%20b/deploy",
            json={"version": versions["champion"]},
            headers=h.bearer(keys["deployer"]),
        )
        assert r.status_code == 400 and r.json()["field"] == "endpoint", r.text
        r = await c.get("/v2/health/ready")
        assert r.status_code == 200
