"""Shadows gather for serve.shadow_batch_wait_ms into fewer, larger predict calls."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pyarrow.compute as pc
import pytest
import serve_helpers as h

from loopml.logs.logreader import read_log
from loopml.serve.inference.batching import MicroBatcher

pytestmark = pytest.mark.anyio


async def test_patient_batcher_waits_its_window_and_a_plain_one_does_not():
    calls: list[int] = []

    def predict(items: list[int]) -> list[int]:
        calls.append(len(items))
        return [i * 2 for i in items]

    async def spread(batcher: MicroBatcher[int, int]) -> list[int]:
        async def one(i: int) -> int:
            await asyncio.sleep(0.004 * i)  # one arrival every 4 ms
            return await batcher.submit(i)

        return await asyncio.gather(*(one(i) for i in range(8)))

    patient = MicroBatcher(predict, max_wait_ms=80, executor="inline", patient=True)
    assert await spread(patient) == [i * 2 for i in range(8)]
    assert calls == [8]
    calls.clear()
    plain = MicroBatcher(predict, max_wait_ms=80, executor="inline")
    await spread(plain)
    assert len(calls) > 1  # a lone arrival is predicted at once (8 on an idle machine)


async def test_shadow_predicts_in_fewer_calls_than_the_routed_version(
    settings, keys, store, versions
):
    store.endpoints.deploy(
        "credit", store.versions.get(versions["spare"]), actor="test", shadow=True
    )
    waiting = h.tuned(settings, serve={"shadow_batch_wait_ms": 200.0, "durable_log": False})
    async with h.serving(waiting) as (app, c):
        for i in range(20):  # one at a time: the champion predicts 20 batches of one
            r = await c.post(
                "/v1/endpoints/credit/predict",
                json={"rows": [h.row(i)]},
                headers=h.bearer(keys["predictor"]),
            )
            assert r.status_code == 200
        await h.off_path_done(app, tries=200)
        assert not app.state.runtime.off_path.in_flight
        metrics = (await c.get("/metrics")).text

    def count(version: int) -> float:
        m = re.search(rf'^loopml_batch_size_count{{version="{version}"}} (\S+)$', metrics, re.M)
        assert m, metrics
        return float(m.group(1))

    # the champion's warm-up call is not counted by the batcher; neither is the shadow's
    assert count(versions["champion"]) == 20
    assert count(versions["spare"]) <= 5


async def test_paired_rows_join_the_champions_routed_batches(settings, keys, store, versions):
    """Guards the canary's paired rows against a predict call of their own: they join the
    champion's routed batcher, never its patient (shadow) one."""
    store.endpoints.deploy(
        "credit", store.versions.get(versions["canary"]), actor="test", canary=50
    )
    async with h.serving(settings) as (app, c):
        rs = await h.predict_each(c, keys["predictor"], [[h.row(i)] for i in range(40)])
        assert {r.status_code for r in rs} == {200}
        assert any(r.json()["model_version"] == versions["canary"] for r in rs)
        await h.off_path_done(app)
        champion = app.state.runtime.pool.get(versions["champion"])
        assert champion.shadow_batcher is not None
        assert not champion.shadow_batcher.batch_sizes
        routed = sum(n * k for n, k in champion.batcher.batch_sizes.items())
    assert routed == 40  # its own rows and the canary's paired ones, one item each


async def test_shadow_answers_beyond_the_queue_bound_are_dropped_and_counted(
    settings, keys, store, versions
):
    """Guards serve's shadow_queue: while a shadow's batch gathers, at most that many
    answers wait in it; the rest are dropped (counted), and every caller is answered."""
    store.endpoints.deploy(
        "credit", store.versions.get(versions["spare"]), actor="test", shadow=True
    )
    bounded = dataclasses.replace(
        h.tuned(settings, serve={"shadow_batch_wait_ms": 300.0}), shadow_queue=5
    )
    async with h.serving(bounded) as (app, c):
        rs = await h.predict_each(c, keys["predictor"], ([h.row(i)] for i in range(20)))
        assert {r.status_code for r in rs} == {200}
        await h.off_path_done(app, tries=200)
        assert not app.state.runtime.off_path.in_flight
        metrics = (await c.get("/metrics")).text
    dropped = re.search(r'^loopml_shadow_dropped_total{endpoint="credit"} (\S+)$', metrics, re.M)
    assert dropped, metrics
    log = read_log(settings.log_root, "credit")
    shadow_rows = log.filter(pc.equal(log.column("_role"), "shadow")).num_rows
    assert shadow_rows == 5
    assert float(dropped.group(1)) == 15
