"""Explanations on the dashboard, in-process: the version page's attributions and fairness gap,
a drifting window's attribution drift (the shifted features that the model uses move the
predictions), the window's fairness gap, and the review queue's per-row explanation against
the model's own output."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest

from loopml.artifacts.model_loader import load_version
from loopml.artifacts.store import ArtifactStore
from loopml.config import load_config
from loopml.store import Store
from loopml.ui import create_ui, pages
from tests.ui import scenario

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def ctx(world):
    root, info = world
    cfg = load_config(root)
    store = Store(cfg.store_url)
    yield {"cfg": cfg, "store": store, "info": info}
    store.close()


def test_version_page_shows_attributions_and_its_json_twin_the_same(ctx):
    s, cfg, info = ctx["store"], ctx["cfg"], ctx["info"]
    page = pages.version(s, cfg, info["v1"])
    a = page["attributions"]
    assert a["method"] == "linear" and a["output"] == "log-odds of class 1"
    assert set(list(a["mean_abs"])[:2]) == {"x0", "x1"}  # the label's features lead

    async def fetch():
        app = create_ui(cfg, s, auth=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ui"
        ) as c:
            return (
                await c.get(f"/versions/{info['v1']}.json"),
                await c.get(f"/versions/{info['v1']}", headers={"accept": "text/html"}),
            )

    import asyncio

    js, html = asyncio.run(fetch())
    assert js.json()["attributions"]["mean_abs"] == pytest.approx(a["mean_abs"])
    assert 'id="attributions"' in html.text and "Attributions" in html.text


def test_drifting_window_says_which_features_moved_the_predictions(ctx):
    s, cfg = ctx["store"], ctx["cfg"]
    windows = s.monitoring.series(scenario.ENDPOINT)
    drifted = [w for w in windows if w["drifted"]]
    calm = [w for w in windows if not w["drifted"]]
    page = pages.window(s, cfg, drifted[-1]["id"])
    e = page["explanation"]
    assert "error" not in e, e
    assert e["method"] == "linear" and e["rows"] == min(300, e["window_rows"])
    top = [r["feature"] for r in e["drift"][:2]]
    # x0..x3 were shifted by +2.5; only x0 and x1 carry weight, so only they move the scores
    assert set(top) == {"x0", "x1"} and all(r["change"] > 0 for r in e["drift"][:2])
    quiet = pages.window(s, cfg, calm[0]["id"])["explanation"]
    moved = {r["feature"]: abs(r["change"]) for r in quiet["drift"]}
    assert max(moved.values()) < min(abs(r["change"]) for r in e["drift"][:2])
    # the window's fairness gap: lowest vs highest selection-rate group, decomposed exactly
    g = e["gap"]
    assert g is not None and set(g) >= {"group", "reference", "gap", "attributions", "flagged"}
    assert sum(g["attributions"].values()) == pytest.approx(g["gap"], abs=1e-9)


def test_review_queue_explains_each_uncertain_prediction(ctx):
    s, cfg, info = ctx["store"], ctx["cfg"], ctx["info"]
    page = pages.review(s, cfg, limit=10)
    items = page["items"]
    assert items and page["explain_note"] is None
    model = load_version(ArtifactStore(cfg.artifacts_root), s.versions.get(info["v1"]))
    names = list(model.feature_names_in_)
    X = pd.DataFrame([{k: it["features"][k] for k in names} for it in items])
    logit = model.decision_function(X)
    for it, want in zip(items, logit, strict=True):
        x = it["explanation"]
        assert x["output"] == "log-odds of class 1"
        assert x["value"] == pytest.approx(want, abs=1e-6)
        sizes = [abs(a["attribution"]) for a in x["top"]]
        assert sizes == sorted(sizes, reverse=True) and len(sizes) == 5
    # uncertain rows sit near the boundary: their log-odds are small
    assert np.abs(logit).mean() < 1.0
