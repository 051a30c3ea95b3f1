"""Refused traffic is monitored (issue 13 item 4): on a real server, requests that all fail
validation are counted per endpoint and window, shown on the dashboard and in ``loopml
monitor``, and raise the data-quality alert ``on: refused``."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import serve_helpers as h

from loopml.cli import main
from loopml.monitor import run_monitor
from loopml.serve import Settings
from loopml.ui import create_ui
from tests.conftest import make_project, run_project

TRAIN_PY = """
from sklearn.linear_model import LogisticRegression


def train(X, y, params, seed=0):
    return LogisticRegression().fit(X, y)
"""

CONFIG = """\
project: refusing
data: {train: data/train.parquet, target: label}
model: {name: refusing, train: train.py:train}
gates: {champion: {blocking: false}, fairness: {blocking: false}}
deploy: {endpoint: ep}
monitor: {min_window_rows: 20}
"""

HTML = {"Accept": "text/html"}
pytestmark = pytest.mark.anyio


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(rng.normal(size=(n, 3)).round(4), columns=["x0", "x1", "x2"])
    out["label"] = (out["x0"] + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return out


@pytest.fixture
def project(tmp_path):
    root = make_project(tmp_path / "proj", config=CONFIG, frame=_frame(600, 0), train_py=TRAIN_PY)
    cfg, store, result = run_project(root)
    store.endpoints.deploy("ep", result.version, actor="test")
    key = store.keys.create("predictor", actor="test")[0]
    yield root, cfg, store, key
    store.close()


def _send(cfg, key: str, good: int, bad: int) -> None:
    """``good`` requests of 5 valid rows, ``bad`` of 5 rows where x1 is a string."""
    rows = _frame(5 * (good + bad), 1).drop(columns=["label"]).to_dict(orient="records")
    settings = Settings.from_config(cfg, poll_seconds=0.05, access_log=False)
    with (
        h.thread_server(settings) as (url, _app),
        httpx.Client(base_url=url, headers=h.bearer(key), timeout=30) as c,
    ):
        for i in range(good + bad):
            chunk = rows[5 * i : 5 * i + 5]
            if i >= good:
                chunk = [{**r, "x1": "n/a"} for r in chunk]
            r = c.post("/v1/endpoints/ep/predict", json={"rows": chunk})
            assert r.status_code == (200 if i < good else 422), r.text


async def test_every_request_refused_raises_an_alert_and_shows_on_the_dashboard(project, capsys):
    root, cfg, store, key = project
    _send(cfg, key, good=0, bad=12)

    # right after traffic the window is open: counted, said, not judged
    assert main(["--config", str(root), "monitor"]) == 0
    out = capsys.readouterr().out
    assert "refused 12 request(s), 60 row(s) (100% of rows; served 0)" in out, out
    assert "type x1 60 row(s)" in out and "(window still open)" in out
    assert store.monitoring.alerts(endpoint="ep") == []

    summary = run_monitor(cfg, store, now=time.time() + 3 * 3600)
    assert [a["rule"] for a in summary["alerts"]] == ["refused-traffic"]
    [alert] = store.monitoring.alerts(endpoint="ep", status="open")
    assert alert["on"] == "refused" and alert["subject"] == "endpoint:ep"
    assert alert["severity"] == "critical"
    assert "share of rows refused 1 >= 0.5" in alert["message"]
    ev = alert["evidence"]
    assert (ev["refused_requests"], ev["refused_rows"], ev["served_rows"]) == (12, 60, 0)
    assert ev["top"] == [
        {"reason": "type", "column": "x1", "status": 422, "requests": 12, "rows": 60}
    ]
    [w] = store.refused.series("ep")
    assert (w["requests"], w["rows"], w["served"], w["share"]) == (12, 60, 0, 1.0)

    # a rerun finds nothing new: no second window, no new alert event
    again = run_monitor(cfg, store, now=time.time() + 3 * 3600)
    assert again["alerts"] == [] and len(store.refused.series("ep")) == 1

    app = create_ui(cfg, store, auth=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as c:
        ep = (await c.get("/endpoints/ep.json")).json()
        [shown] = ep["refused"]
        assert (shown["requests"], shown["rows"], shown["share"]) == (12, 60, 1.0)
        assert shown["counts"][0]["column"] == "x1"
        assert [a["on"] for a in ep["alerts"]] == ["refused"]
        page = await c.get("/endpoints/ep", headers=HTML)
        assert page.status_code == 200
        assert "Refused requests" in page.text and "100.0%" in page.text
        assert "refused-traffic" in page.text


async def test_a_few_refusals_show_on_the_window_page_without_an_alert(project):
    _root, cfg, store, key = project
    _send(cfg, key, good=8, bad=2)
    summary = run_monitor(cfg, store, now=time.time() + 3 * 3600)
    assert summary["alerts"] == [] or all(a["rule"] != "refused-traffic" for a in summary["alerts"])
    [w] = store.refused.series("ep")
    assert (w["requests"], w["rows"], w["served"]) == (2, 10, 40)
    assert w["share"] == pytest.approx(10 / 50)
    wid = store.monitoring.series("ep")[0]["id"]
    app = create_ui(cfg, store, auth=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as c:
        detail = (await c.get(f"/windows/{wid}.json")).json()
        assert detail["refused"]["rows"] == 10 and detail["refused"]["served"] == 40
        page = await c.get(f"/windows/{wid}", headers=HTML)
        assert page.status_code == 200 and "20.0%" in page.text


def test_refusals_still_in_open_log_segments_reach_the_monitor(project):
    """Guards against the live reader decoding refused segments as predictions: a pass while
    the server runs (nothing compacted yet) counts the refusals."""
    from loopml.server import monitor_live

    _root, cfg, store, key = project
    settings = Settings.from_config(cfg, poll_seconds=0.05, access_log=False)
    rows = _frame(5, 1).drop(columns=["label"]).to_dict(orient="records")
    with (
        h.thread_server(settings) as (url, app),
        httpx.Client(base_url=url, headers=h.bearer(key), timeout=30) as c,
    ):
        for _ in range(3):
            r = c.post("/v1/endpoints/ep/predict", json={"rows": [{**x, "x1": None} for x in rows]})
            assert r.status_code == 422, r.text
        # the count is taken beside the answer and written by the log's writer thread: on a
        # loaded box it can trail the 422 by a moment, so look again until it is there
        deadline = time.monotonic() + 30
        while True:
            app.state.runtime.flush_refusals()
            summary = run_monitor(cfg, store, now=time.time() + 3 * 3600, live=monitor_live(cfg))
            seen = summary["endpoints"].get("ep", {}).get("refused", {}).get("windows")
            if (seen and seen[0]["requests"] == 3) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert not list((Path(settings.log_root) / "refused").glob("endpoint=*/hour=*/*.parquet"))
        [w] = summary["endpoints"]["ep"]["refused"]["windows"]
        assert (w["requests"], w["rows"], w["counts"][0]["column"]) == (3, 15, "x1")
        assert [a["rule"] for a in summary["alerts"]] == ["refused-traffic"]
