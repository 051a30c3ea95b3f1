"""Every role boundary, rate limits, audit actors, and the one error shape over every route."""

from __future__ import annotations

import re

import pytest
import serve_helpers as h

from loopml.serve.access.auth import OPEN, RANK, Authenticator, TokenBucket
from loopml.serve.http.application import ROUTES
from loopml.types import ROLES

pytestmark = pytest.mark.anyio


def _url(path: str, versions: dict[str, int]) -> str:
    return path.replace("{endpoint}", "credit").replace("{version}", str(versions["spare"]))


def _shape(r) -> dict:
    doc = r.json()
    assert set(doc) >= {"error", "field", "status"}, doc
    assert doc["status"] == r.status_code
    assert isinstance(doc["error"], str) and doc["error"]
    return doc


async def test_every_role_boundary(settings, keys, versions):
    """Each route: 401 without a key, 403 for the role just below, not 401/403 at its role."""
    async with h.serving(settings) as (_, c):
        for method, path, role, _ in ROUTES:
            url = _url(path, versions)
            if role == OPEN:
                r = await c.request(method, url)
                assert r.status_code not in (401, 403), (path, r.text)
                continue
            r = await c.request(method, url)
            assert r.status_code == 401 and _shape(r)["field"] == "authorization", path
            assert "Bearer" in r.headers["www-authenticate"]
            for other in ROLES:
                # disable/deploy with a valid body would change traffic: send an empty object
                r = await c.request(
                    method,
                    url,
                    headers=h.bearer(keys[other]),
                    json={} if method == "POST" else None,
                )
                if RANK[other] < RANK[role]:
                    assert r.status_code == 403, (path, other, r.text)
                    assert role in _shape(r)["error"]
                else:
                    assert r.status_code not in (401, 403), (path, other, r.text)


async def test_rate_limit_429_with_retry_after(settings, store):
    key, _ = store.keys.create("predictor", rate_per_s=0.5, actor="test")
    tight = h.tuned(settings, serve={"rate_burst": 3})
    async with h.serving(tight) as (_, c):
        codes = []
        for i in range(5):
            r = await c.post(
                "/v1/endpoints/credit/predict", json={"rows": [h.row(i)]}, headers=h.bearer(key)
            )
            codes.append(r.status_code)
        assert codes == [200, 200, 200, 429, 429]
        assert int(r.headers["retry-after"]) >= 1
        assert _shape(r)["field"] == "authorization"


def test_token_bucket_and_key_cache_ttl():
    b = TokenBucket(rate=2.0, burst=2.0)
    assert [b.take(0.0), b.take(0.0)] == [0.0, 0.0]
    assert b.take(0.0) == pytest.approx(0.5)
    assert b.take(0.5) == 0.0  # one token came back after 0.5 s
    calls, now = [], [0.0]
    key = "lml_000000ab_" + "x" * 43
    records = {key: {"id": 1, "prefix": "000000ab", "role": "viewer"}}

    def lookup(key):
        calls.append(key)
        return records.get(key)

    auth = Authenticator(lookup, ttl=5.0, clock=lambda: now[0])
    for _ in range(3):
        assert auth.check(f"Bearer {key}", "viewer").actor == "key:000000ab"
    assert len(calls) == 1  # cached
    del records[key]  # revoked in the store
    now[0] = 6.0
    with pytest.raises(Exception, match="unknown or revoked"):
        auth.check(f"Bearer {key}", "viewer")


async def test_mutations_are_audited_with_the_key_as_actor(settings, keys, store, versions):
    async with h.serving(settings) as (_, c):
        r = await c.post(
            "/v1/endpoints/credit/deploy",
            json={"version": versions["spare"], "canary": 10, "reason": "try"},
            headers=h.bearer(keys["deployer"]),
        )
        assert r.status_code == 200, r.text
        assert r.json()["server"]["canary"] == versions["spare"]
        r = await c.post(
            "/v1/endpoints/credit/rollback", json={}, headers=h.bearer(keys["deployer"])
        )
        assert r.status_code == 200, r.text
    prefix = keys["deployer"].split("_")[1]
    actions = [(d["action"], d["actor"]) for d in store.decisions.list(endpoint="credit")]
    assert ("canary", f"key:{prefix}") in actions and ("rollback", f"key:{prefix}") in actions


JUNK = [
    b"",
    b"null",
    b"[]",
    b"{}",
    b'{"rows": 3}',
    b'{"rows": [1, 2]}',
    b'{"rows": [{}]}',
    b'{"columns": [1], "data": 2}',
    b'{"inputs": [{"name": 1}]}',
    b'{"labels": [{}]}',
    b'{"version": "x"}',
    b'{"version": 999999}',
    b'{"dataframe_split": {"data": [[1]]}}',
    b'{"inputs": [{"name": "f0", "shape": [-1], "datatype": "FP64", "data": []}]}',
    b'{"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP64", "data": [[1]]}]}',
    b"\xff\xfe\x00garbage",
    b'{"rows": [{"f0": 1e999}]}',
    b'{"labels": [{"request_id": "x"}]}',
    b"9" * 5000,
    b'{"canary": true, "version": 1}',
    b'{"reason": 5}',
]


async def test_error_shape_and_no_500_on_junk(settings, keys, versions):
    """Throw junk at every route with every content type: never a 500, always one shape."""
    async with h.serving(settings) as (_, c):
        admin = h.bearer(keys["admin"])
        for method, path, _, _ in ROUTES:
            urls = [
                _url(path, versions),
                re.sub(r"\{[^}]+\}", "no-such-thing", path),
                re.sub(r"\{[^}]+\}", "%00%ff..", path),
            ]
            for i, url in enumerate(urls):
                bodies = (JUNK if i == 0 else JUNK[:3]) if method == "POST" else [b""]
                for body in bodies:
                    for ctype in ("application/json", "text/csv") if i == 0 else ("image/png",):
                        r = await c.request(
                            method,
                            url,
                            content=body,
                            headers={**admin, "Content-Type": ctype, "X-Entity-Key": "k"},
                        )
                        assert r.status_code < 500 or r.status_code == 503, (url, body, r.text)
                        if r.status_code >= 400:
                            _shape(r)
        for method, url in (("GET", "/nowhere"), ("DELETE", "/v1/labels"), ("PUT", "/metrics")):
            r = await c.request(method, url, headers=admin)
            assert r.status_code in (404, 405)
            _shape(r)
