"""Alerts follow traffic: a subject that leaves traffic resolves with a reason, and endpoint
health counts only open alerts of live subjects (issue 11 item 6), on a real SQLite store."""

from __future__ import annotations

import numpy as np

from loopml.monitor import run_monitor
from loopml.monitor.queries import open_alerts
from loopml.ui.pages.overview import overview

from ._log import T0, page, register, write_predictions
from .test_jobs import _frame, _model, _setup

DRIFT_RULE = {"name": "drift", "on": "drift", "k": 1, "m": 1, "severity": "critical"}


def _traffic(cfg, store, v, rng, hour, shift, role="champion"):
    frame = _frame(rng, 1000, shift)
    pred, score = _model(frame)
    write_predictions(
        cfg.artifacts_root,
        "ep",
        frame,
        version=v,
        prediction=pred,
        score=score,
        role=role,
        ts=T0 + hour * 3600 + rng.uniform(0, 3600, len(frame)),
    )


def _health(store, cfg):
    return next(e for e in overview(store, cfg)["endpoints"] if e["name"] == "ep")["health"]


def test_alert_of_a_version_that_leaves_traffic_resolves_and_health_returns_to_ok(tmp_path):
    rng = np.random.default_rng(20)
    cfg, store, v1 = _setup(
        tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", rng, alerts=[DRIFT_RULE]
    )
    store.endpoints.deploy("ep", v1, actor="test")
    _traffic(cfg, store, v1["id"], rng, 0, 1.0)
    run_monitor(cfg, store, now=T0 + 3600)
    (alert,) = open_alerts(store, endpoint="ep")
    assert alert["subject"] == f"version:{v1['id']}/champion"
    assert _health(store, cfg) == "critical"

    train = _frame(rng, 2000)
    pred, score = _model(train)
    v2 = register(store, cfg, train.assign(y=pred), pred, score, metrics={"accuracy": 0.9})
    store.endpoints.deploy("ep", v2, actor="test")  # v2 replaces v1 as champion
    # health counts live subjects only, even before a monitoring pass resolves the alert
    assert open_alerts(store, endpoint="ep") and _health(store, cfg) == "ok"
    out = run_monitor(cfg, store, now=T0 + 3600)  # no new window: traffic alone resolves it
    assert open_alerts(store, endpoint="ep") == []
    resolved = store.monitoring.alert(alert["id"])
    assert resolved["status"] == "resolved"
    why = resolved["evidence"]["resolution"]
    assert why["kind"] == "left_traffic"
    assert f"version {v1['id']} no longer serves as champion" in why["reason"]
    assert [e["event"] for e in out["alerts"]] == ["resolved"]
    assert _health(store, cfg) == "ok"
    assert "no longer serves as champion" in page(cfg, store, "/endpoints/ep")

    # late windows of the retired version (a drifted hour compacted late) do not reopen it
    _traffic(cfg, store, v1["id"], rng, 1, 1.0)
    run_monitor(cfg, store, now=T0 + 2 * 3600)
    assert open_alerts(store, endpoint="ep") == []


def test_alert_whose_condition_clears_resolves_with_the_reason(tmp_path):
    rng = np.random.default_rng(21)
    cfg, store, v1 = _setup(
        tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", rng, alerts=[DRIFT_RULE]
    )
    store.endpoints.deploy("ep", v1, actor="test")
    _traffic(cfg, store, v1["id"], rng, 0, 1.0)
    run_monitor(cfg, store, now=T0 + 3600)
    (alert,) = open_alerts(store, endpoint="ep")
    _traffic(cfg, store, v1["id"], rng, 1, 0.0)
    run_monitor(cfg, store, now=T0 + 2 * 3600)
    resolved = store.monitoring.alert(alert["id"])
    assert resolved["status"] == "resolved"
    assert resolved["evidence"]["resolution"]["kind"] == "cleared"
    assert "condition cleared" in resolved["evidence"]["resolution"]["reason"]
    assert _health(store, cfg) == "ok"


def test_open_alerts_of_a_shadow_do_not_make_the_endpoint_unhealthy_once_it_is_gone(tmp_path):
    rng = np.random.default_rng(22)
    cfg, store, v1 = _setup(
        tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", rng, alerts=[DRIFT_RULE]
    )
    store.endpoints.deploy("ep", v1, actor="test")
    train = _frame(rng, 2000)
    pred, score = _model(train)
    v2 = register(store, cfg, train.assign(y=pred), pred, score, metrics={"accuracy": 0.9})
    store.endpoints.deploy("ep", v2, actor="test", shadow=True)
    _traffic(cfg, store, v1["id"], rng, 0, 0.0)
    _traffic(cfg, store, v2["id"], rng, 0, 1.0, role="shadow")
    run_monitor(cfg, store, now=T0 + 3600)
    (alert,) = open_alerts(store, endpoint="ep")
    assert alert["subject"] == f"version:{v2['id']}/shadow"
    assert _health(store, cfg) == "critical"
    store.endpoints.rollback("ep", actor="test")  # removes the shadow
    run_monitor(cfg, store, now=T0 + 3600)
    assert open_alerts(store, endpoint="ep") == []
    assert _health(store, cfg) == "ok"
