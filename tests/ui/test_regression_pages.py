"""The dashboard for a regression model: the monitor's metric (r2), not an empty accuracy."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest

from loopml.monitor import run_monitor
from loopml.store import Store
from loopml.ui import create_ui
from tests.monitor._log import T0, make_config, register, write_labels, write_predictions

pytestmark = pytest.mark.anyio
HTML = {"accept": "text/html"}


@pytest.fixture
def world(tmp_path):
    """A regression version on endpoint 'ep' with one labelled, monitored window."""
    rng = np.random.default_rng(0)
    cfg = make_config(tmp_path, f"sqlite:///{tmp_path / 'm.db'}")
    store = Store(cfg.store_url)
    train = pd.DataFrame({"x": rng.normal(size=500), "g": rng.choice(["a", "b"], 500)})
    v = register(
        store,
        cfg,
        train.assign(y=2 * train["x"]),
        2 * train["x"].to_numpy(),
        np.full(500, np.nan),
        metrics={"r2": 0.9, "rmse": 1.0, "mae": 0.8},
        task="regression",
    )
    frame = pd.DataFrame({"x": rng.normal(size=300), "g": rng.choice(["a", "b"], 300)})
    pred = 2 * frame["x"].to_numpy()
    y = pred + rng.normal(size=300)
    ids = write_predictions(
        cfg.artifacts_root, "ep", frame, version=v["id"], prediction=pred, ts=T0 + np.arange(300)
    )
    write_labels(cfg.artifacts_root, "ep", ids, y, ts=T0 + 3700)
    run_monitor(cfg, store, now=T0 + 7200)
    yield cfg, store, y, pred
    store.close()


async def test_regression_pages_show_live_r2_and_say_estimation_does_not_apply(world):
    """Guards against regression endpoints showing an empty 'Accuracy' chart and column, and
    a dash for the estimate, while their live r2, rmse and mae were computed."""
    from sklearn.metrics import r2_score

    cfg, store, y, pred = world
    wid = store.monitoring.series("ep")[0]["id"]
    r2 = r2_score(y, pred)
    app = create_ui(cfg, store, auth=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as c:
        ep = (await c.get("/endpoints/ep.json")).json()
        chart = next(ch for ch in ep["charts"] if ch["id"] == "accuracy")
        assert chart["title"].startswith("r2:")
        assert chart["series"][0]["y"] == [pytest.approx(r2)]
        assert ep["windows"][0]["metric"] == "r2"
        assert ep["windows"][0]["performance"] == pytest.approx(r2)
        assert ep["summary"]["performance"] == pytest.approx(r2)
        page = await c.get(f"/windows/{wid}", headers=HTML)
        assert page.status_code == 200
        assert f"r2 {r2:.3g}" in page.text and "rmse" in page.text
        assert "not applicable: a regression model" in page.text
        for path in ("/", "/endpoints/ep"):
            r = await c.get(path, headers=HTML)
            assert r.status_code == 200 and "r2" in r.text, path


async def test_alerts_and_monitor_windows_answer_over_the_api(world):
    """Guards against GET /v1/alerts and GET /v1/monitors/{endpoint} (named in the HTTP
    contract and in error messages) answering 'No dashboard page'."""
    from dataclasses import replace

    from loopml.serve.settings import Settings
    from loopml.server import compose

    cfg, store, _, _ = world
    key, _ = store.keys.create("viewer", name="api-test")
    auth = {"Authorization": f"Bearer {key}"}
    app = compose(cfg, replace(Settings.from_config(cfg), access_log=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        r = await c.get("/v1/monitors/ep", headers=auth)
        assert r.status_code == 200, r.text
        (w,) = r.json()
        assert w["metric"] == "r2" and w["labels"] == 300
        r = await c.get("/v1/alerts?status=open", headers=auth)
        assert r.status_code == 200 and isinstance(r.json(), list), r.text
        r = await c.get("/v1/alerts?status=maybe", headers=auth)
        assert r.status_code == 422 and r.json()["field"] == "status"
        r = await c.get("/v1/monitors/nope", headers=auth)
        assert r.status_code == 404 and r.json()["field"] == "endpoint"
        r = await c.get("/v1/alert", headers=auth)
        assert r.status_code == 404 and "No API route GET '/v1/alert'" in r.json()["error"]
