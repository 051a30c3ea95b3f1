"""The dashboard in-process (httpx over ASGITransport): every page and its JSON twin from one
context, the viewer boundary on pages, the key cookie, the error shape, and the numbers the
pages compute (drift order, histograms, chart buckets, the review queue) against oracles."""

from __future__ import annotations

import json
import re

import httpx
import numpy as np
import pyarrow as pa
import pytest

from loopml.config import load_config
from loopml.evaluate.documents.version_report import render_stored
from loopml.store import Store
from loopml.ui import create_ui, pages
from loopml.ui.html_report import write_endpoint_report
from loopml.ui.pages.review import least_sure
from loopml.ui.pages.window import drift_table
from loopml.ui.series import bucketed
from loopml.ui.session import safe_next
from tests.ui import scenario

pytestmark = pytest.mark.anyio
HTML = {"accept": "text/html"}


@pytest.fixture(scope="module")
def ctx(world):
    root, info = world
    cfg = load_config(root)
    store = Store(cfg.store_url)
    viewer, _ = store.keys.create("viewer", name="ui-test")
    yield {"cfg": cfg, "store": store, "info": info, "viewer": viewer}
    store.close()


def client(ctx, auth=True):
    app = create_ui(ctx["cfg"], ctx["store"], auth=auth)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui")


def _paths(ctx):
    s, info = ctx["store"], ctx["info"]
    wid = s.monitoring.series(scenario.ENDPOINT)[-1]["id"]
    did = s.decisions.list(limit=1)[0]["id"]
    return {
        "/": lambda: pages.overview(s, ctx["cfg"]),
        f"/endpoints/{scenario.ENDPOINT}": lambda: pages.endpoint(s, ctx["cfg"], scenario.ENDPOINT),
        f"/windows/{wid}": lambda: pages.window(s, ctx["cfg"], wid),
        f"/versions/{info['v2']}": lambda: pages.version(s, ctx["cfg"], info["v2"]),
        "/decisions": lambda: pages.decisions(s, ctx["cfg"]),
        f"/decisions/{did}": lambda: pages.decision(s, ctx["cfg"], did),
        "/review": lambda: pages.review(s, ctx["cfg"]),
    }


async def test_every_page_and_its_json_twin_come_from_one_context(ctx):
    async with client(ctx, auth=False) as c:
        for path, build in _paths(ctx).items():
            page = await c.get(path, headers=HTML)
            assert page.status_code == 200, (path, page.text[:300])
            assert page.headers["content-type"].startswith("text/html")
            twin = await c.get("/index.json" if path == "/" else f"{path}.json")
            assert twin.status_code == 200, (path, twin.text[:300])
            expected = json.loads(json.dumps(build(), default=str))
            got = twin.json()
            if got.get("page") == "review":  # "now" moves between the two calls
                got.pop("period"), expected.pop("period")
            assert got == expected, path
            # the page shows what its context holds, and links its twin
            assert got["title"].split(":")[0].replace("'", "&#39;") in page.text
            assert ("/index.json" if path == "/" else f"{path}.json") in page.text


async def test_pages_need_a_valid_key_and_any_role_may_read(ctx):
    async with client(ctx) as c:
        r = await c.get("/versions/1", headers=HTML)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/versions/1"
        r = await c.get("/versions/1.json")
        assert r.status_code == 401 and r.json()["field"] == "authorization"
        r = await c.get("/", headers={**HTML, "cookie": "loopml_key=lml_dead_beef"})
        assert r.status_code == 303
        # the key entry checks the key like the API does, then sets an HttpOnly cookie
        bad = await c.post("/login", json={"key": "lml_nope_nope"})
        assert bad.status_code == 401 and set(bad.json()) >= {"error", "status", "field"}
        ok = await c.post("/login", json={"key": ctx["viewer"]})
        assert ok.status_code == 200 and ok.json()["role"] == "viewer"
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert ctx["viewer"].lower() not in cookie  # a signed session, never the key
        r = await c.get("/versions/1", headers=HTML)  # the client keeps the session cookie
        assert r.status_code == 200 and "viewer" in r.text
        c.cookies.clear()
        # a Bearer header works for the JSON twins too (scripts, curl)
        r = await c.get("/index.json", headers={"Authorization": f"Bearer {ctx['viewer']}"})
        assert r.status_code == 200
        out = await c.post("/logout")
        assert (
            'loopml_session=""' in out.headers["set-cookie"]
            or "max-age=0" in out.headers["set-cookie"].lower()
        )


async def test_a_revoked_key_stops_opening_pages(ctx):
    store = ctx["store"]
    key, rec = store.keys.create("viewer")
    app = create_ui(ctx["cfg"], store, auth=True)
    app.state.auth.ttl = 0.0  # no cache: the next request asks the store
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as c:
        assert (await c.post("/login", json={"key": key})).status_code == 200
        assert (await c.get("/index.json")).status_code == 200
        store.keys.revoke(rec["id"])
        assert (await c.get("/index.json")).status_code == 401


async def test_errors_have_one_shape_and_html_for_people(ctx):
    async with client(ctx, auth=False) as c:
        for path in (
            "/versions/999.json",
            "/versions/99999999999999999999999.json",  # beyond 64 bits: was a 500
            "/windows/999.json",
            "/endpoints/nope.json",
            "/decisions.json?since=yesterday",
            "/decisions.json?limit=0",
            "/nowhere",
        ):
            r = await c.get(path)
            assert 400 <= r.status_code < 500, path
            assert (
                set(r.json()) == {"error", "status", "field"}
                and r.json()["status"] == r.status_code
            )
        r = await c.get("/versions/999", headers=HTML)
        assert r.status_code == 404 and "No model version 999" in r.text
    assert safe_next("//evil.example/x") == "/" and safe_next("https://evil") == "/"
    assert safe_next("/versions/2?x=1") == "/versions/2?x=1"


async def test_decisions_filter_by_actor_action_and_time(ctx):
    s = ctx["store"]
    every = pages.decisions(s, ctx["cfg"])["decisions"]
    assert {d["action"] for d in every} >= {"register", "deploy"}
    async with client(ctx, auth=False) as c:
        r = (await c.get("/decisions.json", params={"action": "deploy", "actor": "test"})).json()
        assert r["decisions"] and all(
            d["action"] == "deploy" and d["actor"] == "test" for d in r["decisions"]
        )
        assert r["decisions"][0]["subject_href"] == f"/endpoints/{scenario.ENDPOINT}"
        newest = max(d["at"] for d in every)
        r = (await c.get("/decisions.json", params={"since": str(newest)})).json()
        assert [d["at"] for d in r["decisions"]] == [newest]
        r = (await c.get("/decisions.json", params={"until": "2000-01-01"})).json()
        assert r["decisions"] == []


def test_drift_table_sorts_by_effect_and_histograms_match_the_evidence(ctx):
    s = ctx["store"]
    drifted = [w for w in s.monitoring.series(scenario.ENDPOINT) if w["drifted"]]
    assert drifted, "the scenario's shifted hours must drift"
    page = pages.window(s, ctx["cfg"], drifted[-1]["id"])
    effects = [c["effect"] for c in page["drift"]["columns"]]
    assert effects == sorted(effects, reverse=True)
    assert {c["column"] for c in page["drift"]["columns"][:4]} == set(scenario.SHIFTED)
    raw = {
        c["column"]: c
        for c in s.monitoring.window(drifted[-1]["id"])["results"]["drift"]["columns"]
    }
    for name, h in page["histograms"].items():
        if name not in raw:
            continue
        ev = raw[name]["evidence"]
        assert sum(h["current_counts"]) == sum(ev["current"]) + (ev.get("rest") or {}).get(
            "current", 0
        )
        np.testing.assert_allclose(sum(h["reference"]), 1.0)
        np.testing.assert_allclose(
            h["current"], np.array(h["current_counts"]) / sum(h["current_counts"])
        )
        np.testing.assert_allclose(
            raw[name]["value"] / raw[name]["threshold"],
            next(c["effect"] for c in page["drift"]["columns"] if c["column"] == name),
        )
    rows, _ = drift_table(
        {
            "columns": [
                {"column": "a", "value": 1.0, "threshold": None},
                {"column": "b", "value": 0.2, "threshold": 0.1},
            ]
        }
    )
    assert [r["column"] for r in rows] == ["b", "a"]  # no threshold: last


def test_chart_buckets_keep_the_worst_value_of_each_bucket():
    rng = np.random.default_rng(0)
    n = 8760
    x = np.arange(n) * 3600.0
    acc = rng.uniform(0.7, 0.9, n)
    acc[rng.choice(n, 500, replace=False)] = np.nan
    drift = rng.uniform(0, 1, n)
    out = bucketed(x, {"accuracy": acc, "drift_score": drift, "rows": np.ones(n)}, max_points=600)
    k = out["bucket"]
    assert k == 15 and len(out["x"]) == len(out["accuracy"]) == -(-n // k)
    chunks = [slice(i, i + k) for i in range(0, n, k)]
    np.testing.assert_allclose(out["accuracy"], [np.nanmin(acc[s]) for s in chunks], rtol=1e-6)
    np.testing.assert_allclose(out["drift_score"], [drift[s].max() for s in chunks], rtol=1e-6)
    assert sum(out["rows"]) == n and out["x"] == x[::k].tolist()
    small = bucketed(x[:10], {"accuracy": np.array([np.nan] * 10)})
    assert small["bucket"] == 1 and small["accuracy"] == [None] * 10


def test_review_queue_orders_by_sureness_and_skips_labelled_and_shadow_rows():
    rng = np.random.default_rng(3)
    n = 400
    score = rng.uniform(0, 1, n)
    proba = [
        None if i % 3 else [float(p), float(1 - p)] for i, p in enumerate(rng.uniform(0, 1, n))
    ]
    role = np.where(rng.uniform(size=n) < 0.1, "shadow", "champion")
    ids = [f"r{i}" for i in range(n)]
    log = pa.table(
        {
            "_request_id": ids,
            "_role": role.tolist(),
            "_score": score,
            "_proba": pa.array(proba, pa.list_(pa.float64())),
        }
    )
    labelled = {f"r{i}" for i in range(0, n, 7)}
    rows, sure = least_sure(log, labelled, 25)
    # oracle: max probability (proba when logged, else max(s, 1 - s)), unlabelled served rows
    oracle = np.array(
        [max(p) if p is not None else max(s, 1 - s) for p, s in zip(proba, score, strict=True)]
    )
    keep = [i for i in range(n) if role[i] != "shadow" and ids[i] not in labelled]
    expected = sorted(keep, key=lambda i: (oracle[i], i))[:25]
    assert rows.column("_request_id").to_pylist() == [ids[i] for i in expected]
    np.testing.assert_allclose(sure, oracle[expected])


def test_review_queue_of_the_scenario_lists_unlabelled_rows_least_sure_first(ctx):
    page = pages.review(ctx["store"], ctx["cfg"], limit=20)
    log = ctx["info"]["log"]
    ids = np.asarray(log["ids"])
    sure = np.maximum(log["score"], 1 - log["score"])
    free = ~log["labelled"]
    expected = ids[free][np.argsort(sure[free], kind="stable")][:20].tolist()
    assert [it["request_id"] for it in page["items"]] == expected
    assert page["classes"] == [0, 1] and page["period"]["labelled"] == int(log["labelled"].sum())


def test_reports_are_self_contained(ctx, tmp_path):
    s, cfg = ctx["store"], ctx["cfg"]
    out = write_endpoint_report(
        cfg, s, scenario.ENDPOINT, "2024-03-01", None, tmp_path / "r" / "ep.html"
    )
    html = out.read_text()
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(?!data:)', html), (
        "an asset is not inlined"
    )
    assert "function lineChart" in html and 'id="charts-data"' in html
    assert "feature-drift" in html and "x2" in html  # the alert and a drifted feature
    data = json.loads(re.search(r'id="charts-data">(.*?)</script>', html, re.S).group(1))
    assert any(s_["y"] for c in data for s_ in c["series"])
    v = render_stored(s, cfg, ctx["info"]["v1"])  # what `loopml report VERSION` writes
    assert (
        "Lineage" in v
        and "Fairness" in v
        and not re.search(r'<(script|link|img)[^>]+(src|href)="(?!data:)', v)
    )


async def test_loopml_serve_composes_the_dashboard_at_the_root(ctx):
    from dataclasses import replace

    from loopml.serve.settings import Settings
    from loopml.server import compose

    settings = replace(Settings.from_config(ctx["cfg"]), access_log=False)
    app = compose(ctx["cfg"], settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        assert (await c.get("/healthz")).status_code == 200  # the API still answers first
        r = await c.get("/", headers=HTML)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        r = await c.get("/index.json", headers={"Authorization": f"Bearer {ctx['viewer']}"})
        assert r.status_code == 200 and r.json()["page"] == "overview"
        r = await c.get("/v1/nothing-here")
        assert r.status_code == 404 and set(r.json()) == {"error", "status", "field"}
