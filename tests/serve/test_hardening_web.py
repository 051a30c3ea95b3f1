"""Issue 14 defects 1-3: cross-site requests to a server without auth, the key entry's body
limit, and open redirects after login."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import serve_helpers as h

from loopml.ui.session import safe_next

pytestmark = pytest.mark.anyio

ROLLBACK = "/v1/endpoints/credit/rollback"
LOCAL = "http://127.0.0.1:8000"


@contextlib.asynccontextmanager
async def client(app: Any, base: str = LOCAL) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app), as_host(app, base) as c:
        yield c


def as_host(app: Any, base: str) -> httpx.AsyncClient:
    """A client of a started ``app`` that addresses it as ``base`` (its Host header)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)


def composed(settings: Any, project: Any) -> Any:
    """The one-process app of ``loopml serve`` (API + dashboard) for ``settings``."""
    from loopml.config import load_config
    from loopml.server import compose

    return compose(load_config(project), settings)


async def test_no_auth_refuses_rebinding_hosts_and_foreign_origins(settings, versions):
    """Defect 1: with --no-auth, a rebinding Host or a foreign Origin cannot act (was 200)."""
    from loopml.serve import create_app

    off = dataclasses.replace(settings, auth=False)
    app = create_app(off)
    async with client(app) as c:
        async with as_host(app, "http://rebind.attacker.example:8000") as evil:
            r = await evil.post(ROLLBACK, json={}, headers={"Origin": "http://evil.example"})
            assert r.status_code == 403 and r.json()["field"] == "host", r.text
            r = await evil.get("/v1/keys")  # reads are refused too: rebinding reads the API
            assert r.status_code == 403
        r = await c.post(ROLLBACK, json={}, headers={"Origin": "http://evil.example"})
        assert r.status_code == 403 and r.json()["field"] == "origin", r.text
        r = await c.post(ROLLBACK, json={}, headers={"Origin": "null"})
        assert r.status_code == 403 and r.json()["field"] == "origin", r.text
        # a cross-site "simple" request: no body, no content type (or a form's)
        r = await c.post(ROLLBACK)
        assert r.status_code == 415 and r.json()["field"] == "content-type", r.text
        r = await c.post(ROLLBACK, content=b"a=1", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        r = await c.post("/v1/labels", content=b"{}")
        assert r.status_code == 415
        # the loopback caller itself, with a JSON body, acts (here: nothing to roll back)
        r = await c.post(ROLLBACK, json={}, headers={"Origin": "http://localhost:3000"})
        assert r.status_code == 400 and "roll back" in r.json()["error"], r.text
        r = await c.post(
            "/v1/endpoints/credit/predict", content=b'{"rows": [' + _row() + b"]}"
        )  # a prediction client may send no content type (tritonclient does not)
        assert r.status_code == 200, r.text
        for base in ("http://localhost:8000", "http://[::1]:8000", "http://127.0.0.2"):
            async with as_host(app, base) as other:
                assert (await other.get("/v1/endpoints")).status_code == 200, base


async def test_no_auth_allowed_hosts_are_configurable(settings):
    from loopml.serve import create_app

    serve = settings.serve.model_copy(
        update={"allowed_hosts": ["box.internal", "https://ui.example"]}
    )
    app = create_app(dataclasses.replace(settings, auth=False, serve=serve))
    async with client(app, "http://box.internal:8000") as c:
        assert (await c.get("/v1/endpoints")).status_code == 200
        r = await c.get("/v1/endpoints", headers={"Origin": "https://ui.example"})
        assert r.status_code == 200
        r = await c.get("/v1/endpoints", headers={"Origin": "https://other.example"})
        assert r.status_code == 403


async def test_state_changing_routes_need_json_with_auth_too(settings, keys):
    """Defect 1: a POST without a content type was read as JSON; now 415 on every mutation."""
    from loopml.serve import create_app

    async with client(create_app(settings)) as c:
        for path in (ROLLBACK, "/v1/endpoints/credit/deploy", "/v1/labels"):
            r = await c.post(path, headers=h.bearer(keys["admin"]))
            assert r.status_code == 415 and r.json()["field"] == "content-type", (path, r.text)


def _row() -> bytes:
    import json

    return json.dumps(h.row(1)).encode()


async def test_login_body_is_size_limited(settings, project, keys):
    """Defect 2: POST /login read any body (200 MB raised RSS by 288 MB); now 413 early."""
    app = composed(settings, project)
    pulled = 0

    async def huge():
        nonlocal pulled
        for _ in range(200):
            pulled += 1
            yield b"x" * (1 << 20)

    async with client(app) as c:
        r = await c.post("/login", content=huge(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["field"] == "body", r.text
        assert pulled <= 2  # refused at the first chunk, not after reading 200 MB
        r = await c.post(
            "/login",
            content=b"{}",
            headers={"Content-Type": "application/json", "Content-Length": "999999999"},
        )
        assert r.status_code == 413
        ok = await c.post("/login", json={"key": keys["viewer"]})
        assert ok.status_code == 200, ok.text


OPEN_REDIRECTS = [
    "/\t/evil.example",
    "/%09/evil.example",  # decoded by the query parser into the tab above
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "//evil.example",
    "///evil.example",
    " //evil.example",
    "\t//evil.example",
    "https://evil.example",
    "javascript:alert(1)",
    "/ /evil.example",
]


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
def test_login_next_refuses_open_redirects(target):
    """Defect 3: a WHATWG browser strips tab/newline and reads '\\' as '/'."""
    assert safe_next(target) == "/"


def test_login_next_keeps_same_site_paths():
    for ok in ("/", "/versions/2?x=1", "/endpoints/credit?days=all#top", "/review%20x"):
        assert safe_next(ok) == ok


async def test_login_page_renders_only_a_safe_next(settings, project):
    app = composed(settings, project)
    async with client(app) as c:
        r = await c.get("/login?next=/%09/evil.example", headers={"Accept": "text/html"})
        assert r.status_code == 200
        assert 'data-next="/"' in r.text and "evil.example" not in r.text


async def test_csv_inf_is_refused_like_json(settings, keys):
    """Defect 12: a CSV 'inf' was accepted as a number, where JSON's 1e999 is refused."""
    from loopml.serve import create_app

    names = list(h.row(0))
    values = [str(v) for v in h.row(0).values()]
    auth = h.bearer(keys["predictor"])
    async with client(create_app(settings)) as c:
        for bad in ("inf", "-inf", "Infinity"):
            cells = [bad if n == "f3" else v for n, v in zip(names, values, strict=True)]
            body = ",".join(names) + "\n" + ",".join(cells) + "\n"
            r = await c.post(
                "/endpoints/credit/invocations",
                content=body.encode(),
                headers={**auth, "Content-Type": "text/csv"},
            )
            assert r.status_code == 422 and r.json()["field"] == "f3", (bad, r.text)
        ok = ",".join(names) + "\n" + ",".join(values) + "\n"
        r = await c.post(
            "/endpoints/credit/invocations",
            content=ok.encode(),
            headers={**auth, "Content-Type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        r = await c.post(
            "/v1/endpoints/credit/predict",
            content=b'{"rows": [{"f3": 1e999}]}',
            headers={**auth, "Content-Type": "application/json"},
        )
        assert r.status_code == 400  # JSON refuses it at parse


async def test_dashboard_errors_cap_echoed_input(settings, project, keys):
    long = "e" * 300
    async with client(composed(settings, project)) as c:
        for path in (f"/endpoints/{long}.json", f"/review.json?endpoint={long}", f"/{long}"):
            r = await c.get(path, headers=h.bearer(keys["viewer"]))
            assert 400 <= r.status_code < 500, (path, r.status_code)
            assert "e" * 65 not in r.text, path
