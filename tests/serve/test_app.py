"""The serving app in-process (httpx over ASGITransport): protocols, labels, limits, the pool."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import serve_helpers as h

from loopml.logs.logreader import read_labels, read_log

pytestmark = pytest.mark.anyio


async def test_loopml_json_answer_and_log(settings, keys, versions):
    rows = [h.row(i) for i in range(3)]
    async with h.serving(settings) as (app, c):
        r = await c.post(
            "/v1/endpoints/credit/predict",
            json={"rows": rows},
            headers={**h.bearer(keys["predictor"]), "X-Entity-Key": "cust-9"},
        )
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["model_version"] == versions["champion"]
        assert len(doc["request_ids"]) == len(doc["predictions"]) == 3
        proba = np.array(doc["probabilities"])
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        model = app.state.runtime.pool.get(versions["champion"]).model
        expected = model.predict_proba(pd.DataFrame(rows))
        np.testing.assert_allclose(proba, expected, rtol=1e-12)
        assert doc["classes"] == model.classes_.tolist()  # names the columns of probabilities
        # columns + data form gives the same answer
        split = {"columns": list(rows[0]), "data": [list(x.values()) for x in rows]}
        r2 = await c.post(
            "/v1/endpoints/credit/predict", json=split, headers=h.bearer(keys["predictor"])
        )
        assert r2.json()["predictions"] == doc["predictions"]
    log = read_log(settings.log_root, "credit")
    mine = log.filter(log.column("_entity_key").is_valid())
    assert mine.column("_request_id").to_pylist() == doc["request_ids"]
    assert set(mine.column("_role").to_pylist()) == {"champion"}
    np.testing.assert_allclose(mine.column("f3").to_numpy(), [x["f3"] for x in rows])


async def test_mlflow_formats_give_the_same_predictions(settings, keys):
    rows = [h.row(i) for i in range(4)]
    cols = list(rows[0])
    bodies = {
        "dataframe_split": {
            "dataframe_split": {"columns": cols, "data": [list(r.values()) for r in rows]}
        },
        "dataframe_records": {"dataframe_records": rows},
        "instances": {"instances": rows},
        "inputs": {"inputs": {c: [r[c] for r in rows] for c in cols}},
    }
    async with h.serving(settings) as (_, c):
        answers = {}
        for name, body in bodies.items():
            for url in ("/invocations", "/endpoints/credit/invocations"):
                r = await c.post(url, json=body, headers=h.bearer(keys["predictor"]))
                assert r.status_code == 200, (name, r.text)
                answers[name, url] = r.json()["predictions"]
        csv = pd.DataFrame(rows).to_csv(index=False)
        r = await c.post(
            "/invocations",
            content=csv,
            headers={**h.bearer(keys["predictor"]), "Content-Type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        answers["csv"] = r.json()["predictions"]
        assert len({tuple(a) for a in answers.values()}) == 1
        r = await c.post(
            "/invocations",
            content=b"a=1",
            headers={
                **h.bearer(keys["predictor"]),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert r.status_code == 415


async def test_labels_are_durable_and_unknown_ids_reported(settings, keys):
    async with h.serving(settings) as (_, c):
        r = await c.post(
            "/v1/endpoints/credit/predict",
            json={"rows": [h.row(1), h.row(2)]},
            headers=h.bearer(keys["predictor"]),
        )
        ids = r.json()["request_ids"]
        body = {
            "labels": [
                {"request_id": ids[0], "label": 1},
                {"request_id": ids[1], "label": 0},
                {"request_id": "0190aaaa-0000-7000-8000-000000000000", "label": 1},
            ]
        }
        r = await c.post("/v1/labels", json=body, headers=h.bearer(keys["labeller"]))
        assert r.status_code == 200, r.text
        assert r.json() == {"accepted": 2, "unknown": ["0190aaaa-0000-7000-8000-000000000000"]}
    labels = read_labels(settings.log_root, "credit")
    assert dict(
        zip(
            labels.column("_request_id").to_pylist(),
            labels.column("_label").to_pylist(),
            strict=True,
        )
    ) == {ids[0]: 1, ids[1]: 0}


async def test_bad_inputs_are_4xx_naming_field_and_row(settings, keys):
    good = h.row(0)
    cases = [
        ({"rows": [good, {**good, "f3": "abc"}]}, 422, "f3", 1),
        ({"rows": [{k: v for k, v in good.items() if k != "f7"}]}, 422, "f7", None),
        ({"rows": [{**good, "extra": 1}]}, 422, "extra", None),
        # the model fails on NaN: refused before the model, naming column and row (issue 13)
        ({"rows": [good, {**good, "f2": None}]}, 422, "f2", 1),
        ({"rows": []}, 422, "rows", None),
        ({"nope": 1}, 422, "body", None),
    ]
    async with h.serving(settings) as (_, c):
        for body, status, field, row in cases:
            r = await c.post(
                "/v1/endpoints/credit/predict", json=body, headers=h.bearer(keys["predictor"])
            )
            assert r.status_code == status, (body, r.text)
            doc = r.json()
            assert doc["field"] == field and doc["status"] == status
            assert doc.get("row") == row
            assert "abc" not in doc["error"]  # never echo client values
        r = await c.post(
            "/v1/endpoints/credit/predict",
            content=b"{not json",
            headers={**h.bearer(keys["predictor"]), "Content-Type": "application/json"},
        )
        assert r.status_code == 400 and r.json()["field"] == "body"
        r = await c.post(
            "/v1/endpoints/credit/predict",
            content=b"<x/>",
            headers={**h.bearer(keys["predictor"]), "Content-Type": "text/xml"},
        )
        assert r.status_code == 415 and r.json()["field"] == "content-type"


async def test_body_limit_by_header_and_while_streaming(settings, keys):
    small = h.tuned(settings, serve={"max_body_bytes": 2048})
    big = {"rows": [h.row(i) for i in range(40)]}
    async with h.serving(small) as (_, c):
        r = await c.post(
            "/v1/endpoints/credit/predict", json=big, headers=h.bearer(keys["predictor"])
        )
        assert r.status_code == 413 and r.json()["field"] == "body"

        async def chunks():  # no Content-Length: counted while streaming
            for _ in range(10):
                yield b" " * 1000

        r = await c.post(
            "/v1/endpoints/credit/predict",
            content=chunks(),
            headers={**h.bearer(keys["predictor"]), "Content-Type": "application/json"},
        )
        assert r.status_code == 413


async def test_unseen_category_flagged_in_log_and_coarsening(settings, keys):
    coarse = h.tuned(settings, deploy={"coarsen": "top_class"})
    async with h.serving(coarse) as (_, c):
        r = await c.post(
            "/v1/endpoints/credit/predict",
            json={"rows": [h.row(0, cat="zzz")]},
            headers=h.bearer(keys["predictor"]),
        )
        assert r.status_code == 200, r.text
        assert "probabilities" not in r.json() and "classes" not in r.json()
    log = read_log(settings.log_root, "credit")
    assert log.column("_flags").to_pylist() == ["unseen:cat"]
    assert log.column("_proba").to_pylist()[0] is not None  # the log keeps full scores
    rounded = h.tuned(settings, deploy={"coarsen": "rounded", "unseen_categories": "reject"})
    async with h.serving(rounded) as (_, c):
        r = await c.post(
            "/v1/endpoints/credit/predict",
            json={"rows": [h.row(0)]},
            headers=h.bearer(keys["predictor"]),
        )
        p = r.json()["probabilities"][0]
        assert p == [round(x, 2) for x in p]
        r = await c.post(
            "/v1/endpoints/credit/predict",
            json={"rows": [h.row(0, cat="zzz")]},
            headers=h.bearer(keys["predictor"]),
        )
        assert r.status_code == 422 and r.json()["field"] == "cat"


async def test_disabled_version_leaves_traffic_within_a_second(settings, keys, store, versions):
    """Kill switch: traffic falls back to the previous champion, then 503 without one."""
    store.endpoints.promote("credit", versions["spare"], actor="test")
    async with h.serving(settings) as (_, c):
        url, auth = "/v1/endpoints/credit/predict", h.bearer(keys["predictor"])
        r = await c.post(url, json={"rows": [h.row(0)]}, headers=auth)
        assert r.json()["model_version"] == versions["spare"]
        store.disable(versions["spare"], actor="test", reason="kill switch test")
        t0 = time.monotonic()
        while True:
            r = await c.post(url, json={"rows": [h.row(0)]}, headers=auth)
            assert r.status_code == 200, r.text
            if r.json()["model_version"] == versions["champion"]:
                break
            assert time.monotonic() - t0 < 1.0
            await asyncio.sleep(0.01)
        store.disable(versions["champion"], actor="test", reason="kill switch test")
        await asyncio.sleep(0.5)
        r = await c.post(url, json={"rows": [h.row(0)]}, headers=auth)
        assert r.status_code == 503 and "was disabled at" in r.json()["error"]


def _artifact_file(app, settings, store, version: int) -> Path:
    """The file on disk that holds ``version``'s artifact, for a test to tamper with."""
    name = store.versions.get(version)["artifact"]
    path = Path(app.state.runtime.pool.artifacts.path_for(name))
    return path if path.exists() else next(Path(settings.artifacts_root).rglob(name + "*"))


async def test_load_failure_keeps_previous_table_and_is_recorded(settings, keys, store, versions):
    async with h.serving(settings) as (app, c):
        # corrupt the canary's artifact: its digest no longer matches
        _artifact_file(app, settings, store, versions["canary"]).write_bytes(b"tampered")
        r = await c.post(
            "/v1/endpoints/credit/deploy",
            json={"version": versions["canary"], "canary": 50},
            headers=h.bearer(keys["deployer"]),
        )
        assert r.status_code == 200, r.text
        err = r.json()["server"]["load_error"]
        assert err["version"] == versions["canary"]
        for _ in range(20):
            r = await c.post(
                "/v1/endpoints/credit/predict",
                json={"rows": [h.row(0)]},
                headers=h.bearer(keys["predictor"]),
            )
            assert r.json()["model_version"] == versions["champion"]
        decisions = store.decisions.list(action="load_failed")
        assert decisions and decisions[0]["subject"] == f"version:{versions['canary']}"


async def test_load_failure_heals_without_another_deploy(settings, keys, store, versions):
    """A version that failed to load is tried again with backoff: once its artifact is back,
    the server serves it without a new deploy, and the decisions hold the failure once."""
    async with h.serving(settings) as (app, c):
        path = _artifact_file(app, settings, store, versions["canary"])
        good = path.read_bytes()
        path.write_bytes(b"tampered")
        r = await c.post(
            "/v1/endpoints/credit/deploy",
            json={"version": versions["canary"], "canary": 100},
            headers=h.bearer(keys["deployer"]),
        )
        assert r.status_code == 200, r.text
        assert r.json()["server"]["load_error"]["version"] == versions["canary"]
        await asyncio.sleep(3.5)  # tries after 1 s and 2 s fail the same way
        path.write_bytes(good)
        predict = "/v1/endpoints/credit/predict"
        t0 = time.monotonic()
        while True:
            r = await c.post(
                predict, json={"rows": [h.row(0)]}, headers=h.bearer(keys["predictor"])
            )
            assert r.status_code == 200, r.text
            if r.json()["model_version"] == versions["canary"]:
                break
            assert time.monotonic() - t0 < 10, "the restored version was never served"
            await asyncio.sleep(0.1)
        r = await c.get("/v1/endpoints/credit", headers=h.bearer(keys["deployer"]))
        assert r.json()["server"]["load_error"] is None, r.text
        failed = store.decisions.list(action="load_failed")
        assert [d["subject"] for d in failed] == [f"version:{versions['canary']}"]


async def test_labels_are_checked_against_the_served_model(settings, keys):
    """Guards against labels the model cannot have (an unknown class, text for a number)
    being logged, where their mixed types later broke the monitor's read of the label log."""
    async with h.serving(settings) as (_, c):
        r = await c.post(
            "/v1/endpoints/credit/predict",
            json={"rows": [h.row(1), h.row(2), h.row(3)]},
            headers=h.bearer(keys["predictor"]),
        )
        ids = r.json()["request_ids"]
        for bad in ("yes", 2, True):
            body = {
                "labels": [
                    {"request_id": ids[0], "label": 1},
                    {"request_id": ids[1], "label": bad},
                ]
            }
            r = await c.post("/v1/labels", json=body, headers=h.bearer(keys["labeller"]))
            assert r.status_code == 422, r.text
            doc = r.json()
            assert doc["field"] == "labels[1].label" and doc["status"] == 422
            assert "(0, 1)" in doc["error"]
        # '1' and 1.0 name the class 1: logged as the class, so the log has one type
        body = {
            "labels": [
                {"request_id": ids[0], "label": "1"},
                {"request_id": ids[1], "label": 0.0},
                {"request_id": ids[2], "label": 1},
            ]
        }
        r = await c.post("/v1/labels", json=body, headers=h.bearer(keys["labeller"]))
        assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
    labels = read_labels(settings.log_root, "credit")
    assert labels.column("_label").to_pylist() == [1, 0, 1]  # the 422s logged nothing


def test_regression_labels_must_be_numbers():
    """Guards against text or booleans logged as the ground truth of a regression."""
    from loopml.data.signature import Column, Signature
    from loopml.errors import ValidationError
    from loopml.serve.wire.label_check import check_labels

    sig = Signature(columns=(Column("x", "number", "float64"),), task="regression")
    endpoints = {"a": "ep", "b": "ep", "c": "other"}
    ok = check_labels({"a": 151, "b": 2.5, "c": "anything"}, endpoints, {"ep": [sig]})
    assert ok == {"a": 151, "b": 2.5, "c": "anything"}  # 'other' has no model here: unchecked
    for bad in ("151.0", True):
        with pytest.raises(ValidationError) as err:
            check_labels({"a": 1.0, "b": bad}, endpoints, {"ep": [sig]})
        assert err.value.field == "labels[1].label" and "regression" in err.value.message
