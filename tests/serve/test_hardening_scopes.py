"""Issue 14 defects 10 and 11 (keys): endpoint-scoped keys on every route, the dashboard and
its JSON twins; no paths in answers below admin; key lookups off the event loop with caches
that random keys cannot flush."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from pathlib import Path

import pytest
import serve_helpers as h

from loopml.serve.access.auth import Authenticator

pytestmark = pytest.mark.anyio


@pytest.fixture
def two_endpoints(store, versions):
    """'credit' (from the project fixture) and 'other', both serving the champion."""
    store.endpoints.deploy("other", store.versions.get(versions["champion"]), actor="test")
    return store


def scoped(store, role: str, *endpoints: str) -> dict[str, str]:
    return h.bearer(store.keys.create(role, endpoints=list(endpoints), actor="test")[0])


@contextlib.asynccontextmanager
async def composed(settings, project):
    """``loopml serve``'s one app (API + dashboard) through an in-process client."""
    import httpx

    from loopml.config import load_config
    from loopml.server import compose

    app = compose(load_config(project), settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            yield c


async def test_scoped_keys_on_every_api_route(settings, project, two_endpoints, keys, versions):
    store = two_endpoints
    pred = scoped(store, "predictor", "other")
    view = scoped(store, "viewer", "other")
    lab = scoped(store, "labeller", "other")
    dep = scoped(store, "deployer", "other")
    adm = scoped(store, "admin", "other")
    body = {"rows": [h.row(0)]}
    async with composed(settings, project) as c:
        r = await c.post("/v1/endpoints/other/predict", json=body, headers=pred)
        assert r.status_code == 200, r.text
        for path in ("/v1/endpoints/credit/predict", "/endpoints/credit/invocations"):
            r = await c.post(path, json=body, headers=pred)
            assert r.status_code == 403 and r.json()["field"] == "endpoint", (path, r.text)
        r = await c.post("/invocations", json={"dataframe_records": [h.row(0)]}, headers=pred)
        assert r.status_code == 403  # the default endpoint is 'credit'
        r = await c.post("/v2/models/credit/infer", json={"inputs": []}, headers=pred)
        assert r.status_code == 403
        for path in ("/v2/models/credit", "/v1/endpoints/credit", "/v1/monitors/credit"):
            assert (await c.get(path, headers=view)).status_code == 403, path
        assert (await c.get("/v2/models/other", headers=view)).status_code == 200
        names = [e["name"] for e in (await c.get("/v1/endpoints", headers=view)).json()]
        assert names == ["other"]
        all_names = [
            e["name"]
            for e in (await c.get("/v1/endpoints", headers=h.bearer(keys["viewer"]))).json()
        ]
        assert set(all_names) == {"credit", "other"}
        rows = (await c.get("/v1/decisions", headers=view)).json()
        assert rows and {d["endpoint"] for d in rows} == {"other"}
        r = await c.post("/v1/endpoints/credit/rollback", json={}, headers=dep)
        assert r.status_code == 403
        assert (await c.get("/v1/keys", headers=adm)).status_code == 403
        assert (await c.get("/v1/keys", headers=h.bearer(keys["admin"]))).status_code == 200
        # labels: only for the key's endpoints' request ids
        r = await c.post(
            "/v1/endpoints/credit/predict", json=body, headers=h.bearer(keys["predictor"])
        )
        rid = r.json()["request_ids"][0]
        r = await c.post(
            "/v1/labels", json={"labels": [{"request_id": rid, "label": 1}]}, headers=lab
        )
        assert r.status_code == 403 and "credit" in r.json()["error"]
        r = await c.post("/v1/endpoints/other/predict", json=body, headers=pred)
        rid = r.json()["request_ids"][0]
        r = await c.post(
            "/v1/labels", json={"labels": [{"request_id": rid, "label": 1}]}, headers=lab
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text


async def test_scoped_keys_on_the_dashboard_and_its_json_twins(
    settings, project, two_endpoints, keys
):
    """The leak of the issue: viewers read every endpoint's logged features via /review.json."""
    store = two_endpoints
    view = scoped(store, "viewer", "other")
    async with composed(settings, project) as c:
        await c.post(
            "/v1/endpoints/credit/predict",
            json={"rows": [h.row(0)]},
            headers=h.bearer(keys["predictor"]),
        )
        for path in (
            "/review.json?endpoint=credit",
            "/review.json",  # defaults to the first endpoint, 'credit'
            "/endpoints/credit.json",
            "/decisions.json?endpoint=credit",
        ):
            r = await c.get(path, headers=view)
            assert r.status_code == 403, (path, r.text)
        assert (await c.get("/review.json?endpoint=other", headers=view)).status_code == 200
        assert (await c.get("/endpoints/other.json", headers=view)).status_code == 200
        ctx = (await c.get("/index.json", headers=view)).json()
        assert [e["name"] for e in ctx["endpoints"]] == ["other"]
        ctx = (await c.get("/decisions.json", headers=view)).json()
        assert {d["endpoint"] for d in ctx["decisions"]} == {"other"}
        r = await c.get("/endpoints/credit", headers={**view, "Accept": "text/html"})
        assert r.status_code == 403


async def test_no_paths_in_answers_below_admin(settings, project, store, keys, versions):
    """A predictor was shown the absolute artifact path in a 503 (a version failing to load)."""
    from loopml.config import load_config

    root = load_config(project).artifacts_root
    digest = store.versions.get(versions["spare"])["artifact"]
    for f in Path(root).rglob(f"{digest}*"):
        f.unlink()
    store.endpoints.deploy("broken", store.versions.get(versions["spare"]), actor="test")
    async with h.serving(settings) as (_, c):
        r = await c.post(
            "/v1/endpoints/broken/predict",
            json={"rows": [h.row(0)]},
            headers=h.bearer(keys["predictor"]),
        )
        assert r.status_code == 503, r.text
        assert root not in r.text and "<path>" in r.text, r.text
        viewer = await c.get("/v1/endpoints/broken", headers=h.bearer(keys["viewer"]))
        assert viewer.status_code == 200 and root not in viewer.text
        admin = await c.get("/v1/endpoints/broken", headers=h.bearer(keys["admin"]))
        assert root in admin.text  # admins run the server: they see where things are


def test_redact_paths_keeps_api_routes():
    from loopml.serve.access.scopes import redact_paths

    text = (
        "No artifact under /tmp/x/.loopml/artifacts/sha256/ab (see GET /v2/models/credit and "
        "/v1/endpoints; s3://bucket/prefix/a.skops; /endpoints/e/invocations)"
    )
    out = redact_paths(text)
    assert "/tmp/" not in out and "s3://" not in out
    assert "/v2/models/credit" in out and "/v1/endpoints" in out
    assert "/endpoints/e/invocations" in out


def _key(i: int) -> str:
    return f"lml_{i:08x}_" + "k" * 43


async def test_key_cache_random_keys_cannot_evict_valid_ones_and_lookups_leave_the_loop():
    calls: list[str] = []
    threads: set[str] = set()
    valid = _key(1)

    def lookup(key):
        calls.append(key)
        threads.add(threading.current_thread().name)
        return {"id": 1, "prefix": "00000001", "role": "viewer"} if key == valid else None

    auth = Authenticator(lookup, ttl=60.0, cache_size=100)
    assert (await auth.acheck(f"Bearer {valid}", "viewer")).prefix == "00000001"
    assert threading.main_thread().name not in threads  # looked up in a worker thread
    for i in range(2, 2000):  # spray well-formed random keys
        with pytest.raises(Exception, match="unknown or revoked"):
            await auth.acheck(f"Bearer {_key(i)}", "viewer")
    before = calls.count(valid)
    await auth.acheck(f"Bearer {valid}", "viewer")
    assert calls.count(valid) == before == 1  # still cached: not evicted by the spray
    n = len(calls)
    for junk in ("x" * 300, "lml_zz_zz", "' OR 1=1 --"):  # not shaped like a key: no lookup
        with pytest.raises(Exception, match="unknown or revoked"):
            await auth.acheck(f"Bearer {junk}", "viewer")
    assert len(calls) == n


async def test_requests_that_miss_one_key_together_share_one_lookup():
    """Guards the key cache against a herd: when a busy client's entry expires, its
    concurrent requests wait for one store lookup instead of one each."""
    calls: list[str] = []
    key = _key(1)

    def lookup(k):
        calls.append(k)
        return {"id": 1, "prefix": "00000001", "role": "viewer"}

    auth = Authenticator(lookup, ttl=60.0)
    who = await asyncio.gather(*(auth.acheck(f"Bearer {key}", "viewer") for _ in range(64)))
    assert {w.prefix for w in who} == {"00000001"}
    assert calls == [key]


def test_cli_keys_create_with_endpoints(project, capsys):
    from loopml.cli import main

    assert (
        main(["-c", str(project), "keys", "create", "--role", "predictor", "--endpoint", "credit"])
        == 0
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert "credit" in out[0] and out[-1].startswith("lml_")
    assert main(["-c", str(project), "keys", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[-1]["endpoints"] == ["credit"]
    assert main(["-c", str(project), "keys", "create", "--endpoint", "a b"]) == 2
    assert "Endpoint names must" in capsys.readouterr().err
