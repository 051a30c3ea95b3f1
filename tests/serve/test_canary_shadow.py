"""Canary share and stickiness over 10k requests; shadows logged, never returned, never felt."""

from __future__ import annotations

import asyncio
import json

import pytest
import serve_helpers as h

from loopml.logs.logreader import read_log

pytestmark = pytest.mark.anyio


async def test_canary_share_within_two_points_and_sticky(settings, keys, store, versions):
    store.endpoints.deploy(
        "credit", store.versions.get(versions["canary"]), actor="test", canary=10
    )
    # 10k requests as fast as they go: no log fsync, no rate limit
    fast = h.tuned(
        settings, serve={"durable_log": False, "rate_limit_per_s": 1e9, "rate_burst": 10**9}
    )
    auth = h.bearer(keys["predictor"])
    body = {"rows": [h.row(0)]}
    async with h.serving(fast) as (app, _):
        payload = json.dumps(body).encode()

        async def one(key: str) -> int:
            status, answer = await h.asgi_post(
                app, "/v1/endpoints/credit/predict", payload, {**auth, "X-Entity-Key": key}
            )
            assert status == 200, answer
            return json.loads(answer)["model_version"]

        served: list[int] = []
        for start in range(0, 10_000, 500):
            served += await asyncio.gather(*(one(f"cust-{i}") for i in range(start, start + 500)))
        share = served.count(versions["canary"]) / len(served)
        assert abs(share - 0.10) <= 0.02, share
        assert set(served) == {versions["champion"], versions["canary"]}
        # sticky: a key always lands on the same version
        on_canary = next(f"cust-{i}" for i, v in enumerate(served) if v == versions["canary"])
        on_champ = next(f"cust-{i}" for i, v in enumerate(served) if v == versions["champion"])
        again = await asyncio.gather(*(one(k) for k in [on_canary, on_champ] * 25))
        assert again == [versions["canary"], versions["champion"]] * 25


async def test_shadow_answers_logged_under_same_ids_never_returned(settings, keys, store, versions):
    store.endpoints.deploy(
        "credit", store.versions.get(versions["spare"]), actor="test", shadow=True
    )
    async with h.serving(settings) as (app, c):
        rs = await h.predict_each(c, keys["predictor"], ([h.row(i)] for i in range(30)))
        docs = [r.json() for r in rs]
        assert {d["model_version"] for d in docs} == {versions["champion"]}
        assert all(
            set(d) == {"request_ids", "predictions", "probabilities", "classes", "model_version"}
            for d in docs
        )
        await h.off_path_done(app)  # shadows run off the response path: wait for them
    log = read_log(settings.log_root, "credit")
    roles = dict.fromkeys(("champion", "shadow"), 0)
    by_role: dict[str, set[str]] = {"champion": set(), "shadow": set()}
    for rid, role, version in zip(
        log.column("_request_id").to_pylist(),
        log.column("_role").to_pylist(),
        log.column("_version").to_pylist(),
        strict=True,
    ):
        roles[role] += 1
        by_role[role].add(rid)
        assert version == (versions["spare"] if role == "shadow" else versions["champion"])
    assert by_role["shadow"] == by_role["champion"] == {d["request_ids"][0] for d in docs}


async def test_a_shadow_batch_logs_each_request_as_its_routed_record_does(
    settings, keys, store, versions
):
    """A shadow's batch is one log record (Mirroring): concurrent requests of 1-3 rows, with
    entity keys and event times, must read back with the champion's request ids, calls,
    entity keys, event times and inputs, row for row."""
    store.endpoints.deploy(
        "credit", store.versions.get(versions["spare"]), actor="test", shadow=True
    )
    waiting = h.tuned(settings, serve={"shadow_batch_wait_ms": 100.0})
    async with h.serving(waiting) as (app, c):
        rs = await asyncio.gather(
            *(
                c.post(
                    "/v1/endpoints/credit/predict",
                    json={"rows": [h.row(10 * i + j) for j in range(1 + i % 3)]},
                    headers={
                        **h.bearer(keys["predictor"]),
                        "X-Entity-Key": f"cust-{i}",
                        "X-Event-Time": f"2026-01-{1 + i % 28:02d}T00:00:00Z",
                    },
                )
                for i in range(30)
            )
        )
        assert {r.status_code for r in rs} == {200}
        await h.off_path_done(app)
        shadow_calls = sum(app.state.runtime.pool.get(versions["spare"]).batch_sizes.values())
    assert shadow_calls < 30  # batched: fewer calls (and records) than requests
    log = read_log(settings.log_root, "credit").to_pandas()
    cols = ["_call", "_entity_key", "_event_time", *h.row(0)]
    champion = log[log["_role"] == "champion"].set_index("_request_id")[cols].sort_index()
    shadow = log[log["_role"] == "shadow"].set_index("_request_id")[cols].sort_index()
    assert len(champion) == sum(1 + i % 3 for i in range(30))
    assert shadow.equals(champion)
    assert champion["_call"].nunique() == 30


async def test_champion_scores_canary_rows_off_path_under_the_same_ids(
    settings, keys, store, versions
):
    """Paired judgement (issue 11): every canary-routed request is also scored by the
    champion, logged with role 'paired' under the same request ids and call, never returned."""
    store.endpoints.deploy(
        "credit", store.versions.get(versions["canary"]), actor="test", canary=50
    )
    async with h.serving(settings) as (app, c):
        bodies = ([h.row(i), h.row(i + 1)] for i in range(40))
        docs = [r.json() for r in await h.predict_each(c, keys["predictor"], bodies)]
        await h.off_path_done(app)
    on_canary = {
        rid for d in docs if d["model_version"] == versions["canary"] for rid in d["request_ids"]
    }
    assert 0 < len(on_canary) < 80
    log = read_log(settings.log_root, "credit").to_pandas()
    paired = log[log["_role"] == "paired"]
    assert set(paired["_request_id"]) == on_canary
    assert set(paired["_version"]) == {versions["champion"]}
    # both rows of one request share its call id: the unit the rollout's test counts
    canary = log[log["_role"] == "canary"]
    assert (canary.groupby("_call")["_request_id"].count() == 2).all()
    assert set(paired["_call"]) == set(canary["_call"])


async def test_failing_shadow_is_invisible_to_callers(settings, keys, store, versions):
    """A shadow whose model raises (unseen category, handle_unknown='error') never shows."""
    store.endpoints.deploy(
        "credit", store.versions.get(versions["failing_shadow"]), actor="test", shadow=True
    )
    async with h.serving(settings) as (app, c):
        bodies = ([h.row(i, cat="never-seen")] for i in range(40))
        rs = await h.predict_each(c, keys["predictor"], bodies)
        assert {r.status_code for r in rs} == {200}
        await h.off_path_done(app)
        metrics = (await c.get("/metrics")).text
    line = next(x for x in metrics.splitlines() if x.startswith("loopml_shadow_errors_total{"))
    assert float(line.rsplit(" ", 1)[1]) == 40
    log = read_log(settings.log_root, "credit")
    assert set(log.column("_role").to_pylist()) == {"champion"}
    assert log.num_rows == 40
