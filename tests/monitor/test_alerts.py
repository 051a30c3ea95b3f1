"""Alert rules on stored windows (persistence k of m, dedupe, resolve, cooldown) and webhook
delivery with retries against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from loopml.monitor import alerts, breaches
from loopml.monitor.webhooks import Delivery, post
from loopml.store import Store

from ._log import T0, make_config

FAST = Delivery(retries=3, backoff=0.01, timeout=2.0)


@pytest.fixture
def receiver() -> Iterator[dict]:
    """A webhook receiver answering from a script of status codes (then 200)."""
    state: dict = {"script": [], "bodies": [], "hits": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state["hits"] += 1
            body = self.rfile.read(int(self.headers["Content-Length"]))
            code = state["script"].pop(0) if state["script"] else 200
            if code == 200:
                state["bodies"].append(json.loads(body))
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"ok" if code == 200 else b"nope")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    server.shutdown()
    server.server_close()


def test_webhook_retries_until_the_receiver_recovers(receiver):
    receiver["script"] = [500, 503]
    out = post(receiver["url"], {"a": 1}, FAST)
    assert out["ok"] and out["attempts"] == 3 and receiver["bodies"] == [{"a": 1}]


def test_webhook_gives_up_after_retries_and_on_a_client_error(receiver):
    receiver["script"] = [500] * 10
    out = post(receiver["url"], {}, FAST)
    assert not out["ok"] and out["attempts"] == 4 and "HTTP 500" in out["error"]
    receiver["script"], receiver["hits"] = [400], 0
    out = post(receiver["url"], {}, FAST)
    assert not out["ok"] and out["attempts"] == 1 and receiver["hits"] == 1


def test_webhook_to_a_closed_port_fails_without_raising():
    out = post("http://127.0.0.1:9/nothing", {}, Delivery(retries=1, backoff=0.01, timeout=0.5))
    assert not out["ok"] and out["attempts"] == 2 and out["error"]


def _windows(store: Store, scores: list[float]) -> list[float]:
    starts = []
    for i, s in enumerate(scores):
        start = T0 + i * 3600
        store.monitoring.save_window(
            endpoint="ep",
            version=1,
            role="champion",
            start=start,
            end=start + 3600,
            rows=1000,
            drift_score=s,
            results={"drift": {"drifted_columns": ["x"] if s >= 0.3 else []}},
            log_files="f",
            label_files="l",
        )
        starts.append(start)
    return starts


def _run(store, cfg, starts, receiver=None):
    events = []
    for s in starts:  # one window per pass, as the live monitor sees them
        events += alerts.evaluate(store, cfg, "ep", 1, "champion", [s], {}, delivery=FAST)
    return [e["event"] for e in events]


def test_persistence_k_of_m_dedupe_and_resolution(tmp_path, store_url, receiver):
    cfg = make_config(
        tmp_path,
        store_url,
        webhooks=[receiver["url"]],
        alerts=[{"name": "drift", "on": "drift", "k": 2, "m": 3, "cooldown": 0}],
    )
    store = Store(cfg.store_url)
    starts = _windows(store, [0.0, 0.5, 0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.5])
    events = _run(store, cfg, starts)
    # one breach in three windows does not fire; two do; it stays open while 2 of the last 3
    # breach, resolves after, and a single later breach does not fire again
    assert events == ["opened", "updated", "updated", "resolved"]
    (alert,) = store.monitoring.alerts()
    assert alert["status"] == "resolved" and alert["count"] == 3
    assert alert["first_seen"] == starts[3] + 3600 and alert["resolved_at"] == starts[6] + 3600
    assert alert["evidence"]["k"] == 2 and alert["evidence"]["opened"]["drifted_columns"] == ["x"]
    assert len(receiver["bodies"]) == 1 and receiver["bodies"][0]["rule"] == "drift"
    assert alert["delivery"][0]["ok"] and alert["notified_at"] is not None
    # re-evaluating the same windows changes nothing (idempotent reruns)
    assert _run(store, cfg, starts) == []
    assert store.monitoring.alert(alert["id"])["count"] == 3


@pytest.mark.parametrize(
    ("cooldown", "expected"),
    [("3h", ["opened", "resolved", "reopened"]), ("0s", ["opened", "resolved", "opened"])],
)
def test_cooldown_reopens_without_sending_again(tmp_path, receiver, cooldown, expected):
    cfg = make_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        webhooks=[receiver["url"]],
        alerts=[{"name": "drift", "on": "drift", "cooldown": cooldown}],
    )
    store = Store(cfg.store_url)
    starts = _windows(store, [0.5, 0.0, 0.5])
    assert _run(store, cfg, starts) == expected
    assert len(receiver["bodies"]) == (1 if expected[-1] == "reopened" else 2)
    assert len(store.monitoring.alerts(status="open")) == 1


def test_default_rules_need_two_of_three_drifted_windows(tmp_path):
    cfg = make_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    store = Store(cfg.store_url)
    assert {r.on for r in breaches.rules_of(cfg)} == {
        "performance",
        "estimated_performance",
        "drift",
        "quality",
        "refused",  # judged on the endpoint's refused windows (monitor.refused)
    }
    starts = _windows(store, [0.5, 0.0, 0.5])
    assert _run(store, cfg, starts[:2]) == []
    assert _run(store, cfg, starts[2:]) == ["opened"]


def test_performance_rule_waits_for_enough_labels(tmp_path):
    cfg = make_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        alerts=[{"name": "perf", "on": "performance"}],
    )
    store = Store(cfg.store_url)
    for i, (labels, acc) in enumerate([(50, 0.5), (500, 0.86), (500, 0.80)]):
        store.monitoring.save_window(
            endpoint="ep",
            version=1,
            role="champion",
            start=T0 + i * 3600,
            end=T0 + (i + 1) * 3600,
            rows=1000,
            labels=labels,
            metric="accuracy",
            performance=acc,
            results={},
            log_files="f",
            label_files="l",
        )
    events = alerts.evaluate(
        store, cfg, "ep", 1, "champion", [T0, T0 + 3600, T0 + 7200], {"accuracy": 0.87}
    )
    assert [e["event"] for e in events] == ["opened"]
    (alert,) = store.monitoring.alerts()
    assert (
        alert["evidence"]["baseline"] == 0.87 and alert["evidence"]["window"]["start"] == T0 + 7200
    )


def test_k_greater_than_m_is_a_config_error(tmp_path):
    with pytest.raises(Exception, match="k \\(3\\) must be at most m \\(2\\)"):
        make_config(
            tmp_path, "sqlite:///x.db", alerts=[{"name": "a", "on": "drift", "k": 3, "m": 2}]
        )


def test_a_loss_metric_decays_by_rising(tmp_path):
    """Guards against judging rmse / log_loss as if higher were better (an improving model
    breached, a decaying one never did)."""
    cfg = make_config(tmp_path, "sqlite://", performance_metric="rmse", max_performance_drop=0.5)
    rule = cfg.monitor.alerts or breaches.default_rules(cfg)
    perf = next(r for r in rule if r.on == "performance")
    row = {"metric": "rmse", "labels": 500, "rows": 500}
    base = {"rmse": 10.0}
    worse, ev = breaches.judge(perf, {**row, "performance": 10.6}, cfg, base)
    assert worse is True and ev["op"] == ">" and ev["threshold"] == 10.5
    better, _ = breaches.judge(perf, {**row, "performance": 8.0}, cfg, base)
    assert better is False
