"""Refused traffic is counted (issue 13 item 4): by endpoint, reason and column, in /metrics
and in the log's ``refused`` partitions that the monitor reads per window."""

from __future__ import annotations

import pytest
import serve_helpers as h

from loopml.logs.logreader import read_refused

pytestmark = pytest.mark.anyio


async def test_refusals_counted_by_reason_and_column(settings, keys):
    auth = h.bearer(keys["predictor"])
    good = h.row(0)
    bad = [
        ({"rows": [good, {**good, "f2": None}, good]}, "null", "f2", 3),
        ({"rows": [good, {**good, "f2": None}]}, "null", "f2", 2),
        ({"rows": [{**good, "f3": "x"}]}, "type", "f3", 1),
        ({"rows": [{**good, "made_up_" + "z" * 100: 1}]}, "unknown_column", "-", 1),
        ({"rows": [{k: v for k, v in good.items() if k != "f7"}]}, "missing_column", "f7", 1),
        ({"nope": 1}, "malformed", "-", 0),
    ]
    async with h.serving(settings) as (_app, c):
        for body, *_ in bad:
            r = await c.post("/v1/endpoints/credit/predict", json=body, headers=auth)
            assert r.status_code == 422, r.text
        r = await c.post(
            "/v1/endpoints/credit/predict",
            content=b"{not json",
            headers={**auth, "Content-Type": "application/json"},
        )
        assert r.status_code == 400
        r = await c.post("/v1/endpoints/credit/predict", json={"rows": [good]}, headers=auth)
        assert r.status_code == 200
        text = (await c.get("/metrics")).text
    lines = [x for x in text.splitlines() if x.startswith("loopml_refused_")]
    assert 'loopml_refused_requests_total{column="f2",endpoint="credit",reason="null"} 2.0' in lines
    assert 'loopml_refused_rows_total{column="f2",endpoint="credit",reason="null"} 5.0' in lines
    assert (
        'loopml_refused_requests_total{column="-",endpoint="credit",reason="malformed"} 2.0'
        in lines
    )
    assert not any("made_up" in x for x in lines)  # a client's names never become labels
    log = read_refused(settings.log_root, "credit")
    got: dict[tuple[str, str], list[int]] = {}
    for r in log.to_pylist():
        n = got.setdefault((r["_reason"], r["_column"]), [0, 0])
        n[0] += r["_requests"]
        n[1] += r["_rows"]
        assert r["_status"] in (400, 422) and r["_role"] == "champion"
    assert got == {
        ("null", "f2"): [2, 5],
        ("type", "f3"): [1, 1],
        ("unknown_column", "-"): [1, 1],
        ("missing_column", "f7"): [1, 1],
        ("malformed", "-"): [2, 0],
    }
