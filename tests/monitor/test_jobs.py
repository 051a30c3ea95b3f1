"""End-to-end monitoring passes over Parquet parts written in the prediction-log layout, on a
real SQLite file and the real Postgres."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score

from loopml.monitor import run_monitor
from loopml.monitor.queries import open_alerts, timeseries, window_detail
from loopml.store import Store

from ._log import T0, make_config, register, write_labels, write_predictions
from ._project import FEATURES, features, log_hour, predict, setup


def test_shifted_window_raises_drift_alert_and_reruns_are_idempotent(tmp_path, store_url):
    rng = np.random.default_rng(0)
    cfg, store, v = setup(
        tmp_path, store_url, rng, alerts=[{"name": "drift", "on": "drift", "k": 1, "m": 1}]
    )
    root = cfg.artifacts_root
    for hour, shift in enumerate([0.0, 0.0, 1.0]):
        log_hour(cfg, v["id"], rng, 2000, hour, shift)
    first = run_monitor(cfg, store, now=T0 + 3 * 3600)
    assert first["endpoints"]["ep"]["computed"] == 3
    series = timeseries(store, "ep")
    assert series["start"] == [T0, T0 + 3600, T0 + 7200]
    assert series["rows"] == [2000, 2000, 2000]
    assert series["n_drifted"][:2] == [0, 0] and series["n_drifted"][2] == 3
    assert not any(series["drift_score"][:2]) and series["drift_score"][2] >= 0.5
    alerts = open_alerts(store, endpoint="ep")
    assert len(alerts) == 1 and alerts[0]["rule"] == "drift"
    assert alerts[0]["evidence"]["window"]["start"] == T0 + 7200
    assert sorted(alerts[0]["evidence"]["drifted_columns"]) == ["x0", "x1", "x2"]
    detail = window_detail(store, series["id"][2])["results"]
    assert {c["column"] for c in detail["drift"]["columns"]} == {*FEATURES, "g"}
    assert detail["quality"] is not None and detail["latency"]["p50"] == 5.0
    assert detail["prediction_drift"]["columns"]  # _prediction and _score against the test set
    # a rerun with nothing new computes nothing and touches no alert
    again = run_monitor(cfg, store, now=T0 + 3 * 3600)
    assert again["endpoints"]["ep"] == {
        "computed": 0,
        "relabelled": 0,
        "unchanged": 3,
        "looked_at": 0,  # nothing new since the last pass: no window is looked at again
        "alerts": [],
        "provisional": [],
    }
    assert store.monitoring.alert(alerts[0]["id"])["count"] == 1
    # a window still open (now inside it) is not computed
    frame = features(rng, 100)
    write_predictions(
        root,
        "ep",
        frame,
        version=v["id"],
        prediction=predict(frame)[0],
        ts=np.full(100, T0 + 3 * 3600 + 10.0),
    )
    out = run_monitor(cfg, store, now=T0 + 3 * 3600 + 20)
    assert out["windows"] == 0
    # ... but reported as open, with what it waits for
    (open_window,) = out["endpoints"]["ep"]["provisional"]
    assert open_window["status"] == "waiting" and open_window["rows"] == 100
    assert open_window["message"] == (
        f"window 2024-03-01 03:00-04:00 (version {v['id']}, champion): 100 rows of 200 needed"
    )


def test_late_labels_update_performance_fairness_and_estimates(tmp_path, store_url):
    rng = np.random.default_rng(1)
    cfg, store, v = setup(tmp_path, store_url, rng)
    frame, pred, ids = log_hour(cfg, v["id"], rng, 3000)
    y = (frame["x0"] + rng.normal(scale=0.5, size=len(frame)) > 0).astype(int).to_numpy()
    run_monitor(cfg, store, now=T0 + 7200)
    row = store.monitoring.series("ep")[0]
    assert row["labels"] == 0 and row["accuracy"] is None
    assert row["estimated_accuracy"] is not None
    # labels for two thirds of the rows arrive two hours later, one of them twice (the newest wins)
    k = 2000
    write_labels(cfg.artifacts_root, "ep", ids[:k], 1 - y[:k], ts=T0 + 2 * 3600 + 5)
    write_labels(cfg.artifacts_root, "ep", ids[:k], y[:k], ts=T0 + 3 * 3600 + 5)
    res = run_monitor(cfg, store, now=T0 + 4 * 3600)
    assert res["endpoints"]["ep"]["relabelled"] == 1 and res["endpoints"]["ep"]["computed"] == 0
    row = store.monitoring.series("ep")[0]
    assert row["labels"] == k
    assert abs(row["accuracy"] - accuracy_score(y[:k], pred[:k])) < 1e-12
    detail = store.monitoring.window(row["id"])["results"]
    assert detail["drift"] is not None  # the full part was kept
    g = frame["g"].to_numpy()
    # selection rate per group over all rows; the ratio is min/max (both groups are large)
    rates = [pred[g == a].mean() for a in ("a", "b")]
    sel = detail["fairness"]["selection"]
    assert abs(sel["ratio"] - min(rates) / max(rates)) < 1e-12
    tpr = [pred[:k][(g[:k] == a) & (y[:k] == 1)].mean() for a in ("a", "b")]
    got = {x["group"]: x["tpr"]["value"] for x in detail["fairness"]["labelled"]["groups"]}
    assert abs(got["g=a"] - tpr[0]) < 1e-12 and abs(got["g=b"] - tpr[1]) < 1e-12
    slices = {s["slice"]: s for s in detail["performance"]["slices"]}
    assert (
        abs(slices["g=b"]["accuracy"] - accuracy_score(y[:k][g[:k] == "b"], pred[:k][g[:k] == "b"]))
        < 1e-12
    )
    assert detail["label_drift"]["column"] == "y"
    assert run_monitor(cfg, store, now=T0 + 4 * 3600)["windows"] == 0


def test_label_parts_of_different_types_are_compared_not_crashed_on(tmp_path, store_url):
    """Guards against the monitor dying on label parts of different Arrow types (numbers in
    one, text or booleans in another: 'double vs string' from pa.concat_tables)."""
    rng = np.random.default_rng(2)
    cfg, store, v = setup(tmp_path, store_url, rng)
    frame, pred, ids = log_hour(cfg, v["id"], rng, 600)
    y = (frame["x0"] > 0).astype(int).to_numpy()
    write_labels(cfg.artifacts_root, "ep", ids[:300], y[:300], ts=T0 + 3700)
    write_labels(cfg.artifacts_root, "ep", ids[300:400], [str(a) for a in y[300:400]], ts=T0 + 3701)
    write_labels(
        cfg.artifacts_root, "ep", ids[400:500], [bool(a) for a in y[400:500]], ts=T0 + 3702
    )
    run_monitor(cfg, store, now=T0 + 7200)
    row = store.monitoring.series("ep")[0]
    # booleans are their own classes ('True' is not the class 1): they count as misses
    hits = (pred[:400] == y[:400]).sum()
    assert row["labels"] == 500 and row["metric"] == "accuracy"
    assert abs(row["accuracy"] - hits / 500) < 1e-12


def test_regression_windows_track_r2_and_skip_labels_that_are_not_numbers(tmp_path, store_url):
    """Guards against a regression's live performance staying empty (the monitor tracked
    'accuracy' for every model) and against text labels crashing its float cast."""
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(3)
    cfg = make_config(tmp_path, store_url)
    store = Store(cfg.store_url)
    train = features(rng, 2000)
    y_train = 3 * train["x0"].to_numpy() + rng.normal(size=len(train))
    v = register(
        store,
        cfg,
        train.assign(y=y_train),
        3 * train["x0"].to_numpy(),
        np.full(len(train), np.nan),
        metrics={"r2": 0.9, "rmse": 1.0, "mae": 0.8},
        task="regression",
    )
    frame = features(rng, 400)
    pred = 3 * frame["x0"].to_numpy()
    y = pred + rng.normal(size=len(frame))
    ids = write_predictions(
        cfg.artifacts_root,
        "ep",
        frame,
        version=v["id"],
        prediction=pred,
        ts=T0 + rng.uniform(0, 3600, len(frame)),
    )
    write_labels(cfg.artifacts_root, "ep", ids[:200], y[:200], ts=T0 + 3700)
    write_labels(cfg.artifacts_root, "ep", ids[200:300], ["oops"] * 100, ts=T0 + 3701)
    run_monitor(cfg, store, now=T0 + 7200)
    row = store.monitoring.series("ep")[0]
    assert row["metric"] == "r2" and row["labels"] == 200
    assert abs(row["performance"] - r2_score(y[:200], pred[:200])) < 1e-12
    results = store.monitoring.window(row["id"])["results"]
    assert results["estimated"] is None and results["metric_note"] is None
