"""``POST /v1/endpoints/{e}/explain`` in-process: rows or logged request ids, the documented
answer, exact linear attributions equal to shap's own, and 4xx errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import serve_helpers as h

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::UserWarning")]


async def test_explain_rows_match_shap_and_add_up(settings, keys, versions):
    import shap

    from loopml.evaluate.xai.background import _profile_columns, draw_background
    from loopml.evaluate.xai.feature_groups import transform

    rows = [h.row(i, cat="abc"[i % 3]) for i in range(5)]
    async with h.serving(settings) as (app, c):
        r = await c.post(
            "/v1/endpoints/credit/explain", json={"rows": rows}, headers=h.bearer(keys["predictor"])
        )
        assert r.status_code == 200, r.text
        doc = r.json()
        rt = app.state.runtime
        loaded = rt.pool.get(versions["champion"])
    assert set(doc) == {"model_version", "output", "explanations"}
    assert doc["model_version"] == versions["champion"]
    assert doc["output"] == "log-odds of class 1", r.headers
    assert r.headers["x-explanation-method"] == "linear"
    assert r.headers["x-model-version"] == str(versions["champion"])
    X = pd.DataFrame(rows)
    model = loaded.model
    logit = model.decision_function(X)
    cols = [*h.NAMES, "cat"]
    for e, want in zip(doc["explanations"], logit, strict=True):
        assert e["request_id"] is None and list(e["attributions"]) == cols  # grouped back
        assert e["value"] == pytest.approx(
            e["base_value"] + sum(e["attributions"].values()), abs=1e-9
        )
        assert e["value"] == pytest.approx(want, abs=1e-6)
    # shap's own LinearExplainer on the same background: the same numbers per encoded column,
    # summed over the one-hot levels of 'cat'
    from loopml.data.signature import Signature

    bg = draw_background(
        _profile_columns(rt.pool.artifacts, loaded.row),
        Signature.from_dict(loaded.row["signature"]),
    )
    pre, clf = model.steps[0][1], model.steps[-1][1]
    own = shap.LinearExplainer(clf, shap.maskers.Independent(transform([pre], bg), len(bg)))
    sv = own.shap_values(transform([pre], X))
    n_cat = sv.shape[1] - len(h.NAMES)  # ColumnTransformer puts the one-hot levels first
    got = np.array([[e["attributions"][c] for c in cols] for e in doc["explanations"]])
    np.testing.assert_allclose(got[:, -1], sv[:, :n_cat].sum(axis=1), atol=1e-6)
    np.testing.assert_allclose(got[:, :-1], sv[:, n_cat:], atol=1e-6)
    assert doc["explanations"][0]["base_value"] == pytest.approx(
        float(np.ravel(own.expected_value)[0]), abs=1e-6
    )


async def test_explain_logged_predictions_by_request_id(settings, keys, versions):
    rows = [h.row(i) for i in range(3)]
    auth = h.bearer(keys["predictor"])
    async with h.serving(settings) as (_app, c):
        ids = (
            await c.post("/v1/endpoints/credit/predict", json={"rows": rows}, headers=auth)
        ).json()["request_ids"]
        by_rows = (
            await c.post("/v1/endpoints/credit/explain", json={"rows": rows}, headers=auth)
        ).json()
        r = await c.post(
            "/v1/endpoints/credit/explain", json={"request_ids": ids[::-1]}, headers=auth
        )
        assert r.status_code == 200, r.text
        doc = r.json()
    assert doc["model_version"] == versions["champion"]
    assert [e["request_id"] for e in doc["explanations"]] == ids[::-1]
    for e, want in zip(doc["explanations"], by_rows["explanations"][::-1], strict=True):
        assert e["value"] == pytest.approx(want["value"], abs=1e-9)
        for col, a in want["attributions"].items():
            assert e["attributions"][col] == pytest.approx(a, abs=1e-9)


async def test_explain_errors_are_4xx_json(settings, keys):
    auth = h.bearer(keys["predictor"])
    async with h.serving(settings) as (_app, c):
        r = await c.post(
            "/v1/endpoints/credit/explain",
            json={"request_ids": ["0190c0de-0000-7000-8000-000000000000"]},
            headers=auth,
        )
        assert r.status_code == 404 and r.json()["field"] == "request_ids"
        r = await c.post(
            "/v1/endpoints/credit/explain?method=magic", json={"rows": [h.row(0)]}, headers=auth
        )
        assert r.status_code in (400, 422) and r.json()["field"] == "method"
        r = await c.post("/v1/endpoints/nope/explain", json={"rows": [h.row(0)]}, headers=auth)
        assert r.status_code == 404, r.text
        r = await c.post("/v1/endpoints/credit/explain", json={"request_ids": "x"}, headers=auth)
        assert r.status_code in (400, 422) and r.json()["field"] == "request_ids"
        r = await c.post(
            "/v1/endpoints/credit/explain",
            json={"rows": [{**h.row(0), "f0": "high"}]},
            headers=auth,
        )
        assert r.status_code in (400, 422), r.text
        r = await c.post(
            "/v1/endpoints/credit/explain?class=7", json={"rows": [h.row(0)]}, headers=auth
        )
        assert r.status_code in (400, 422) and r.json()["field"] == "class"
        r = await c.post(
            "/v1/endpoints/credit/explain",
            json={"rows": [h.row(0)]},
            headers=h.bearer(keys["viewer"]),
        )
        assert r.status_code == 403


async def test_explain_takes_the_predict_body_with_context_columns(settings, keys):
    """Regression: rows carrying the declared context columns (data.id) explain as they predict."""
    if not hasattr(settings, "context_columns"):
        pytest.skip("this server has no context columns")
    settings = dataclasses.replace(settings, context_columns=("id",))
    rows = [{**h.row(i), "id": i} for i in range(2)]
    auth = h.bearer(keys["predictor"])
    async with h.serving(settings) as (_app, c):
        p = await c.post("/v1/endpoints/credit/predict", json={"rows": rows}, headers=auth)
        r = await c.post("/v1/endpoints/credit/explain", json={"rows": rows}, headers=auth)
    assert p.status_code == 200, p.text
    assert r.status_code == 200, r.text
    assert "id" not in r.json()["explanations"][0]["attributions"]
