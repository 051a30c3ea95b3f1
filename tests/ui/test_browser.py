"""The dashboard in real headless Chromium against the real server (``loopml serve``'s app,
uvicorn on 127.0.0.1): every page loads with no console error and no request leaving
127.0.0.1, the charts draw their data, promote / rollback / disable and a review-queue label
work with the right role and show the API's 403 with the wrong one. Screenshots go to
test-artifacts/ui/."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tests.ui import scenario

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)",
    ),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live(world):
    import uvicorn

    from loopml import server as server_module
    from loopml.config import load_config
    from loopml.serve.settings import Settings
    from loopml.server import compose
    from loopml.store import Store

    root, info = world
    cfg = load_config(root)
    store = Store(cfg.store_url)
    keys = {
        role: store.keys.create(role, name=f"ui-{role}")[0]
        for role in ("viewer", "predictor", "labeller", "deployer")
    }
    # without the controller's loop: it would move traffic on its own while the test acts
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(server_module, "SERVICES", [])
        app = compose(
            cfg, replace(Settings.from_config(cfg), access_log=False, key_cache_seconds=0.5)
        )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="on", access_log=False, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    # fresh predictions through the real API: the review queue must offer them for labelling
    rows = scenario.frame_of(6).to_dict("records")
    r = httpx.post(
        f"{url}/v1/endpoints/{scenario.ENDPOINT}/predict",
        json={"rows": rows},
        headers={"Authorization": f"Bearer {keys['predictor']}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    predicted_at = time.time()
    try:
        yield {
            "url": url,
            "keys": keys,
            "store": store,
            "info": info,
            "cfg": cfg,
            "request_ids": r.json()["request_ids"],
            "predicted_at": predicted_at,
        }
    finally:
        server.should_exit = True
        thread.join(30)
        store.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Session:
    """One browser context logged in with a key, recording console errors and requests."""

    def __init__(self, browser, url: str, key: str) -> None:
        self.url = url
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(f"{url}/")
        assert self.page.url.startswith(f"{url}/login"), self.page.url  # no key: the key entry
        self.page.fill("#key", key)
        self.page.click("#login button[type=submit]")
        self.page.wait_for_url(f"{url}/")

    def go(self, path: str) -> None:
        resp = self.page.goto(f"{self.url}{path}")
        assert resp is not None and resp.status == 200, (path, resp and resp.status)
        self.page.wait_for_load_state("load")

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def offsite(self) -> list[str]:
        return [
            u for u in self.requests if not (u.startswith(self.url + "/") or u.startswith("data:"))
        ]

    def close(self) -> None:
        self.context.close()


@contextlib.contextmanager
def session(browser, live, role: str):
    s = Session(browser, live["url"], live["keys"][role])
    try:
        yield s
    finally:
        s.close()


def _confirm(s: Session, label: str) -> str:
    """Click an action button, confirm in the dialog, return the status line it ends with."""
    s.page.get_by_role("button", name=label).click()
    s.page.wait_for_selector("dialog#confirm[open]")
    s.page.fill("#confirm-reason", f"browser test: {label}")
    s.page.click("#confirm-ok")
    status = s.page.locator("#action-status")
    # wait for the final line in one condition: "Working…" is shown only after the dialog's
    # promise resolves, so "not Working… and not empty" checked one after the other could
    # pass before it appears; a loaded CI box can take seconds to finish the action
    sync_api.expect(status).to_have_text(re.compile(r"^(?!Working…)\S"), timeout=30_000)
    return status.inner_text()


def test_every_page_loads_offline_with_charts(browser, live):
    store, info = live["store"], live["info"]
    windows = store.monitoring.series(scenario.ENDPOINT)
    drifted = [w for w in windows if w["drifted"]][-1]
    decision = store.decisions.list(limit=1)[0]
    with session(browser, live, "viewer") as s:
        s.shot("overview")
        assert (
            s.page.locator("#endpoints tr[data-endpoint='tiny'] .badge").inner_text() == "critical"
        )
        assert "viewer" in s.page.locator("#who").inner_text()

        s.go(f"/endpoints/{scenario.ENDPOINT}")
        for chart in ("traffic", "latency", "errors", "accuracy", "drift", "fairness"):
            fig = s.page.locator(f"figure[data-chart='{chart}'] svg")
            assert fig.count() == 1, chart
            assert fig.locator("path.series").count() >= 1, f"chart {chart} drew no line"
        assert s.page.locator("figure[data-chart='drift'] g.marker").count() >= 1  # the drift alert
        assert s.page.locator("figure[data-chart='accuracy'] circle.point").count() >= len(windows)
        s.shot("endpoint")

        s.go(f"/windows/{drifted['id']}")
        assert s.page.locator("#hist svg rect.bar-current").count() >= 5
        first = s.page.locator("#hist-name").inner_text()
        s.page.locator("#drift tr[data-hist='cat']").click()
        assert s.page.locator("#hist-name").inner_text() == "cat" != first
        assert s.page.locator("#hist svg rect.bar-reference").count() == 3  # categories a, b, c
        s.shot("window")

        s.go(f"/versions/{info['v2']}")
        chain = s.page.locator("#lineage").inner_text()
        assert f"v{info['v2']}" in chain and "Run #" in chain and "train" in chain
        assert s.page.locator(f"#lineage a[href='/versions/{info['v1']}']").count() == 1
        assert s.page.locator("#gates tbody tr").count() >= 2
        s.shot("version")

        s.go("/decisions")
        s.page.fill("#filters input[name=action]", "deploy")
        s.page.click("#filters button[type=submit]")
        s.page.wait_for_url("**/decisions?*action=deploy*")
        actions = s.page.locator("#decisions tbody tr").evaluate_all(
            "rows => rows.map(r => r.getAttribute('data-action'))"
        )
        assert actions and set(actions) == {"deploy"}
        s.shot("decisions")

        s.go(f"/decisions/{decision['id']}")
        assert s.page.locator("#evidence").count() == 1
        s.go("/review")
        assert s.page.locator("#queue tbody tr[data-request-id]").count() == 50
        s.shot("review")

        s.go("/index.json")  # the twins open in the browser too
        assert '"page":"overview"' in s.page.content()
        assert s.errors == [], s.errors
        assert s.offsite() == [], s.offsite()


def test_promote_rollback_and_disable_need_the_deployer_role(browser, live):
    store, info = live["store"], live["info"]
    v1, v2 = info["v1"], info["v2"]
    with session(browser, live, "viewer") as s:
        s.go(f"/versions/{v2}")
        out = _confirm(s, f"Promote to champion of {scenario.ENDPOINT}")
        assert out.startswith("403 Forbidden") and "deployer" in out, out
        s.shot("promote-forbidden")
        assert all("403" in e for e in s.errors), s.errors  # only the refused API call
    assert store.endpoints.get(scenario.ENDPOINT)["champion_id"] == v1

    with session(browser, live, "deployer") as s:
        s.go(f"/versions/{v2}")
        assert _confirm(s, f"Promote to champion of {scenario.ENDPOINT}").startswith("Done")
        s.page.wait_for_selector("button[data-action='rollback']")  # reloaded: v2 is champion
        ep = store.endpoints.get(scenario.ENDPOINT)
        assert ep["champion_id"] == v2 and ep["previous_champion_id"] == v1
        # (the controller may record its own decisions after ours: look ours up by action)
        last = store.decisions.list(endpoint=scenario.ENDPOINT, action="promote", limit=1)[0]
        assert last["actor"].startswith("key:")
        assert last["reason"].startswith("browser test")

        assert _confirm(s, f"Roll back {scenario.ENDPOINT}").startswith("Done")
        s.page.wait_for_selector("button[data-action='promote']")
        assert store.endpoints.get(scenario.ENDPOINT)["champion_id"] == v1

        assert _confirm(s, "Disable (kill switch)").startswith("Done")
        s.page.wait_for_selector("#actions .empty, button[data-action='rollback']")
        assert store.versions.get(v2)["status"] == "disabled"
        s.shot("after-disable")
        assert s.errors == [] and s.offsite() == [], (s.errors, s.offsite())


def test_a_review_queue_label_needs_the_labeller_role(browser, live):
    from loopml.logs.logreader import read_labels

    rid = live["request_ids"][0]
    path = f"/review?since={live['predicted_at'] - 60:.0f}"  # the API's predictions only
    row = f"#queue tr[data-request-id='{rid}']"
    with session(browser, live, "viewer") as s:
        s.go(path)
        assert s.page.locator("#queue tbody tr[data-request-id]").count() == len(
            live["request_ids"]
        )
        s.page.locator(f"{row} button.label-save").click()
        status = s.page.locator(f"{row} .status")
        sync_api.expect(status).to_contain_text("403", timeout=10_000)
        assert all("403" in e for e in s.errors), s.errors
    with session(browser, live, "labeller") as s:
        s.go(path)
        s.page.locator(f"{row} select.label-value").select_option(label="1")
        s.page.locator(f"{row} button.label-save").click()
        sync_api.expect(s.page.locator(f"{row} .status")).to_have_text("Saved.", timeout=10_000)
        s.shot("review-labelled")
        assert s.errors == [] and s.offsite() == [], (s.errors, s.offsite())
    root = live["cfg"].artifacts_root
    labels = read_labels(root, scenario.ENDPOINT)
    got = dict(
        zip(
            labels.column("_request_id").to_pylist(),
            labels.column("_label").to_pylist(),
            strict=True,
        )
    )
    assert rid in got and float(got[rid]) == 1.0


def test_explanations_on_the_version_window_and_review_pages(browser, live):
    store, info = live["store"], live["info"]
    drifted = [w for w in store.monitoring.series(scenario.ENDPOINT) if w["drifted"]][-1]
    with session(browser, live, "viewer") as s:
        s.go(f"/versions/{info['v1']}")
        rows = s.page.locator("#attributions tbody tr")
        assert rows.count() >= 8  # x0..x5, cat, sex, group
        assert {rows.nth(i).locator("td").first.inner_text() for i in range(2)} == {"x0", "x1"}
        assert s.page.locator("#attributions td.bar span").first.bounding_box()["width"] > 0
        s.shot("version-attributions")

        s.go(f"/windows/{drifted['id']}")
        drift = s.page.locator("#attribution-drift tbody tr")
        assert drift.count() >= 8
        assert {drift.nth(i).locator("td").first.inner_text() for i in range(2)} == {"x0", "x1"}
        assert s.page.locator("#window-fairness-gap tbody tr").count() >= 2
        s.shot("window-attributions")

        s.go(f"/review?since={live['predicted_at'] - 60:.0f}")
        why = s.page.locator("#queue tbody tr[data-request-id] td.why")
        # (an earlier test may have labelled one of them: labelled rows leave the queue)
        assert why.count() == s.page.locator("#queue tbody tr[data-request-id]").count() >= 5
        text = why.first.inner_text()
        assert "log-odds of class 1" in text and "=" in text
        s.shot("review-explanations")
        assert s.errors == [], s.errors
        assert s.offsite() == [], s.offsite()
