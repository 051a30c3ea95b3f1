"""Issue 14 defect 11 (dashboard): the session is a signed cookie naming the key, never the
raw key; no sessionStorage copy; Secure behind a TLS proxy; actions with the cookie only from
the server's own origin; a revoked key or a forged cookie ends it."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest

from loopml.serve.access.sessions import COOKIE, Sessions

pytestmark = pytest.mark.anyio
BASE = "http://127.0.0.1:8000"


@contextlib.asynccontextmanager
async def composed(settings, project):
    from loopml.config import load_config
    from loopml.server import compose

    app = compose(load_config(project), settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            yield c


async def test_login_issues_a_signed_session_not_the_key(settings, project, store, keys):
    key = keys["deployer"]
    async with composed(settings, project) as c:
        r = await c.post("/login", json={"key": key})
        assert r.status_code == 200, r.text
        header = r.headers["set-cookie"]
        token = c.cookies[COOKIE]
        assert key not in header and key.split("_", 2)[2] not in token
        assert "secure" not in header.lower()  # plain http on loopback
        assert (await c.get("/index.json")).status_code == 200
        # the API accepts the session for the dashboard's actions, from its own origin
        act = {"Origin": BASE}
        r = await c.post("/v1/endpoints/credit/rollback", json={}, headers=act)
        assert r.status_code == 400 and "roll back" in r.json()["error"], r.text  # authorised
        r = await c.post(
            "/v1/endpoints/credit/rollback", json={}, headers={"Origin": "http://evil.example"}
        )
        assert r.status_code == 403 and r.json()["field"] == "origin"
        r = await c.post("/v1/endpoints/credit/rollback", json={})  # no Origin at all
        assert r.status_code == 403
        # a forged or altered cookie is refused
        head, sig = token.split(".")
        for bad in (head + "." + sig[:-2] + "AA", "1:x:99999999999.AAAA", key):
            c.cookies.set(COOKIE, bad)
            assert (await c.get("/index.json")).status_code == 401, bad
        # a revoked key ends its sessions
        c.cookies.set(COOKIE, token)
        store.keys.revoke(_id_of(store, key))
        for _ in range(60):  # the key cache holds records for a few seconds
            if (await c.get("/index.json")).status_code == 401:
                break
            await asyncio.sleep(0.1)
        assert (await c.get("/index.json")).status_code == 401


def _id_of(store, key: str) -> int:
    prefix = key.split("_")[1]
    return next(k["id"] for k in store.keys.list() if k["prefix"] == prefix)


async def test_session_cookie_is_secure_behind_a_tls_proxy(settings, project, keys):
    async with composed(settings, project) as c:
        r = await c.post(
            "/login", json={"key": keys["viewer"]}, headers={"X-Forwarded-Proto": "https"}
        )
        assert "secure" in r.headers["set-cookie"].lower()


def test_session_tokens_expire_and_need_the_secret():
    now = [1000.0]
    rec = {"id": 7, "prefix": "0000abcd", "role": "viewer", "revoked_at": None}
    s = Sessions(
        lambda kid: rec if kid == 7 else None, secret="one", max_age=60, clock=lambda: now[0]
    )
    token = s.issue(7, "0000abcd")
    assert s.record(token) == rec
    assert Sessions(lambda kid: rec, secret="two").record(token) is None  # other secret
    now[0] += 61
    assert s.key_id(token) is None  # expired


def test_the_dashboard_script_keeps_no_key():
    js = (Path(__file__).parents[2] / "src/loopml/ui/static/app.js").read_text()
    assert "sessionStorage" not in js.split("*/", 1)[1] and "localStorage" not in js
    assert "Authorization" not in js
