"""Alerts follow traffic: a subject that leaves traffic resolves with a reason, and endpoint
health counts only open alerts of live subjects (issue 11 item 6), on a real SQLite store."""

from __future__ import annotations

import numpy as np

from loopml.monitor import run_monitor
from loopml.monitor.queries import open_alerts
from loopml.ui.pages.overview import overview

from ._log import T0, page, register
from ._project import features, log_hour, predict, setup

DRIFT_RULE = {"name": "drift", "on": "drift", "k": 1, "m": 1, "severity": "critical"}


def _health(store, cfg):
    return next(e for e in overview(store, cfg)["endpoints"] if e["name"] == "ep")["health"]


def _drift_alert(tmp_path, seed: int):
    """A champion whose first hour drifted, monitored: (cfg, store, rng, version, open alert)."""
    rng = np.random.default_rng(seed)
    cfg, store, v1 = setup(
        tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", rng, alerts=[DRIFT_RULE]
    )
    store.endpoints.deploy("ep", v1, actor="test")
    log_hour(cfg, v1["id"], rng, 1000, 0, 1.0)
    run_monitor(cfg, store, now=T0 + 3600)
    (alert,) = open_alerts(store, endpoint="ep")
    return cfg, store, rng, v1, alert


def test_alert_of_a_version_that_leaves_traffic_resolves_and_health_returns_to_ok(tmp_path):
    cfg, store, rng, v1, alert = _drift_alert(tmp_path, seed=20)
    assert alert["subject"] == f"version:{v1['id']}/champion"
    assert _health(store, cfg) == "critical"

    train = features(rng, 2000)
    pred, score = predict(train)
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
    log_hour(cfg, v1["id"], rng, 1000, 1, 1.0)
    run_monitor(cfg, store, now=T0 + 2 * 3600)
    assert open_alerts(store, endpoint="ep") == []


def test_alert_whose_condition_clears_resolves_with_the_reason(tmp_path):
    cfg, store, rng, v1, alert = _drift_alert(tmp_path, seed=21)
    log_hour(cfg, v1["id"], rng, 1000, 1, 0.0)
    run_monitor(cfg, store, now=T0 + 2 * 3600)
    resolved = store.monitoring.alert(alert["id"])
    assert resolved["status"] == "resolved"
    assert resolved["evidence"]["resolution"]["kind"] == "cleared"
    assert "condition cleared" in resolved["evidence"]["resolution"]["reason"]
    assert _health(store, cfg) == "ok"


def test_open_alerts_of_a_shadow_do_not_make_the_endpoint_unhealthy_once_it_is_gone(tmp_path):
    rng = np.random.default_rng(22)
    cfg, store, v1 = setup(
        tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", rng, alerts=[DRIFT_RULE]
    )
    store.endpoints.deploy("ep", v1, actor="test")
    train = features(rng, 2000)
    pred, score = predict(train)
    v2 = register(store, cfg, train.assign(y=pred), pred, score, metrics={"accuracy": 0.9})
    store.endpoints.deploy("ep", v2, actor="test", shadow=True)
    log_hour(cfg, v1["id"], rng, 1000, 0, 0.0)
    log_hour(cfg, v2["id"], rng, 1000, 0, 1.0, role="shadow")
    run_monitor(cfg, store, now=T0 + 3600)
    (alert,) = open_alerts(store, endpoint="ep")
    assert alert["subject"] == f"version:{v2['id']}/shadow"
    assert _health(store, cfg) == "critical"
    store.endpoints.rollback("ep", actor="test")  # removes the shadow
    run_monitor(cfg, store, now=T0 + 3600)
    assert open_alerts(store, endpoint="ep") == []
    assert _health(store, cfg) == "ok"
