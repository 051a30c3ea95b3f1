"""Rows carry more than the model's inputs (issue 13 items 2, 3, 7; issue 11 item 8): declared
context columns are logged and never modelled, unknown columns follow deploy.extra_columns,
event time is logged as _event_time, nulls are named before the model, the model's own error
is said, and a client can pin a version over V2."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
import serve_helpers as h

from loopml.errors import DataError, ValidationError
from loopml.logs.logreader import read_log
from loopml.serve.wire.context_columns import event_times, parse_time_us, split_context

pytestmark = pytest.mark.anyio


def us(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 10**6


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-23T14:00:00Z", us("2026-11-23T14:00:00")),
        ("2026-11-23T15:00:00+01:00", us("2026-11-23T14:00:00")),
        ("2026-11-23", us("2026-11-23T00:00:00")),
        ("1700000000", 1_700_000_000 * 10**6),
        (1700000000.5, 1_700_000_000_500_000),
        (2016, us("2016-01-01T00:00:00")),  # a year (the employment data's time column)
        ("yesterday", None),
        (float("nan"), None),
        (True, None),
        (1e30, None),
    ],
)
def test_parse_time(value, expected):
    assert parse_time_us(value) == expected


def test_event_times_from_column_then_header():
    assert event_times(None, None, 3, "t") is None
    assert event_times(None, "1700000000", 2, "t") == [1_700_000_000 * 10**6] * 2
    got = event_times([2016, None], "1700000000", 2, "t")
    assert got == [us("2016-01-01T00:00:00"), 1_700_000_000 * 10**6]
    with pytest.raises(ValidationError) as e:
        event_times([2016, "soon"], None, 2, "t")
    assert e.value.field == "t" and e.value.details["row"] == 1
    with pytest.raises(DataError) as e:
        event_times(None, "soon", 1, "t")
    assert e.value.field == "x-event-time"


def test_split_context_keeps_model_columns_for_the_model():
    cols = {"a": [1], "sex": [2], "x": [3]}
    features, ctx = split_context(cols, frozenset({"a"}), ("sex", "a"))
    assert features == {"a": [1], "x": [3]} and ctx == {"sex": [2]}
    assert split_context({"a": [1]}, frozenset({"a"}), ("sex",)) == ({"a": [1]}, {})


@pytest.fixture
def ctx_settings(settings):
    """The test project declares data.id: id; add a time column and a sensitive one."""
    return dataclasses.replace(
        settings, context_columns=("id", "when", "group"), time_column="when"
    )


async def test_context_columns_are_logged_not_modelled(ctx_settings, keys, versions):
    rows = [
        {**h.row(i), "id": 100 + i, "group": "g1" if i else "g2", "when": 2016} for i in range(3)
    ]
    auth = h.bearer(keys["predictor"])
    async with h.serving(ctx_settings) as (app, c):
        r = await c.post("/v1/endpoints/credit/predict", json={"rows": rows}, headers=auth)
        assert r.status_code == 200, r.text
        model = app.state.runtime.pool.get(versions["champion"]).model
        plain = [{k: v for k, v in x.items() if k in [*h.NAMES, "cat"]} for x in rows]
        import pandas as pd

        assert r.json()["predictions"] == model.predict(pd.DataFrame(plain)).tolist()
        # the header gives the event time when the row has none
        r = await c.post(
            "/v1/endpoints/credit/predict",
            json={"rows": [h.row(9)]},
            headers={**auth, "X-Event-Time": "2026-11-23T14:00:00Z"},
        )
        assert r.status_code == 200, r.text
        # unknown columns are refused by default, naming the column and the setting
        r = await c.post(
            "/v1/endpoints/credit/predict",
            json={"rows": [{**h.row(1), "zzz": 1}]},
            headers=auth,
        )
        assert r.status_code == 422 and r.json()["field"] == "zzz"
        assert "deploy.extra_columns: drop" in r.json()["error"]
        # a context value must be one scalar per row
        r = await c.post(
            "/v1/endpoints/credit/predict",
            json={"rows": [{**h.row(1), "group": [1, 2]}]},
            headers=auth,
        )
        assert r.status_code == 422 and r.json()["field"] == "group"
        r = await c.post(
            "/v1/endpoints/credit/predict",
            json={"rows": [{**h.row(1), "when": "later"}]},
            headers=auth,
        )
        assert r.status_code == 422 and r.json()["field"] == "when"
        r = await c.post(
            "/v1/endpoints/credit/predict",
            json={"rows": [h.row(1)]},
            headers={**auth, "X-Event-Time": "later"},
        )
        assert r.status_code == 422 and r.json()["field"] == "x-event-time"
    log = read_log(ctx_settings.log_root, "credit").sort_by("_ts")
    assert log.column("id").to_pylist()[:3] == [100, 101, 102]
    assert log.column("group").to_pylist()[:3] == ["g2", "g1", "g1"]
    assert log.schema.field("_event_time").type == pa.timestamp("us", tz="UTC")
    times = log.column("_event_time").cast(pa.int64()).to_pylist()
    assert times[:3] == [us("2016-01-01T00:00:00")] * 3
    assert times[3] == us("2026-11-23T14:00:00")
    assert "zzz" not in log.column_names


async def test_extra_columns_drop(ctx_settings, keys):
    drop = h.tuned(ctx_settings, deploy={"extra_columns": "drop"})
    async with h.serving(drop) as (_, c):
        r = await c.post(
            "/v1/endpoints/credit/predict",
            json={"rows": [{**h.row(1), "zzz": 1}]},
            headers=h.bearer(keys["predictor"]),
        )
        assert r.status_code == 200, r.text
    log = read_log(drop.log_root, "credit")
    assert "zzz" not in log.column_names
    # no event time given: equal to the request time
    assert log.column("_event_time").to_pylist() == log.column("_ts").to_pylist()


async def test_the_models_own_error_is_said(settings, keys, versions, store):
    """A version whose encoder raises on unseen categories: its message, not just 'ValueError'."""
    store.endpoints.promote("credit", versions["failing_shadow"], actor="test")
    async with h.serving(settings) as (_, c):
        r = await c.post(
            "/v1/endpoints/credit/predict",
            json={"rows": [h.row(1, cat="q" * 500)]},
            headers=h.bearer(keys["predictor"]),
        )
    assert r.status_code == 422 and r.json()["field"] == "rows"
    msg = r.json()["error"]
    assert "unknown categories" in msg.lower() and "ValueError" in msg
    assert "q" * 65 not in msg and len(msg) < 400  # echoed client input stays capped


async def test_pinned_version_over_v2(settings, keys, versions, store):
    """/v2/models/{e}/versions/{v}/infer: a candidate answers, logged with role 'pinned'."""
    spare, champ = versions["spare"], versions["champion"]
    body = {
        "inputs": [
            *(
                {"name": n, "shape": [1], "datatype": "FP64", "data": [h.row(0)[n]]}
                for n in h.NAMES
            ),
            {"name": "cat", "shape": [1], "datatype": "BYTES", "data": ["a"]},
        ]
    }
    auth = h.bearer(keys["predictor"])
    async with h.serving(settings) as (app, c):
        r = await c.post(f"/v2/models/credit/versions/{spare}/infer", json=body, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == str(spare)
        r = await c.post(f"/v2/models/credit/versions/{champ}/infer", json=body, headers=auth)
        assert r.json()["model_version"] == str(champ)
        meta = await c.get(f"/v2/models/credit/versions/{spare}", headers=auth)
        assert meta.status_code == 200 and meta.json()["versions"] == [str(spare)]
        ready = await c.get(f"/v2/models/credit/versions/{spare}/ready", headers=auth)
        assert ready.status_code == 200 and ready.json()["ready"] is True
        r = await c.post("/v2/models/credit/versions/999/infer", json=body, headers=auth)
        assert r.status_code == 404 and r.json()["field"] == "version"
        r = await c.post(f"/v2/models/credit/versions/{'9' * 40}/infer", json=body, headers=auth)
        assert r.status_code == 404
        store.disable(spare, actor="ops", reason="bad")
        await app.state.runtime.watcher.check_statuses()
        app.state.runtime.pool.retain(())  # as the watcher's cleanup would, later
        r = await c.post(f"/v2/models/credit/versions/{spare}/infer", json=body, headers=auth)
        assert r.status_code == 503 and "disabled at" in r.json()["error"]
        ready = await c.get(f"/v2/models/credit/versions/{spare}/ready", headers=auth)
        assert ready.status_code == 503
    log = read_log(settings.log_root, "credit")
    roles = dict(
        zip(log.column("_version").to_pylist(), log.column("_role").to_pylist(), strict=True)
    )
    assert roles == {spare: "pinned", champ: "champion"}
    assert np.isfinite(log.column("f0").to_numpy()).all()
