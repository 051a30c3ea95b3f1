"""Label drift, the estimate's error band under concept shift, and "too few rows" windows
(issue 11 item 7), through real monitoring passes on a SQLite store."""

from __future__ import annotations

import numpy as np

from loopml.monitor import run_monitor
from loopml.monitor.queries import timeseries, window_detail

from ._log import T0, page, write_labels
from ._project import log_hour, setup


def _hour(cfg, v, rng, hour, n=3000):
    frame, _pred, ids = log_hour(cfg, v["id"], rng, n, hour)
    return frame, ids


def test_concept_shift_makes_the_estimate_unreliable_instead_of_confident(tmp_path):
    rng = np.random.default_rng(30)
    cfg, store, v = setup(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", rng)
    same, ids_same = _hour(cfg, v, rng, 0)
    moved, ids_moved = _hour(cfg, v, rng, 1)
    y_same = (same["x0"] + rng.normal(scale=0.5, size=len(same)) > 0).astype(int).to_numpy()
    y_moved = (moved["x0"] + rng.normal(scale=0.5, size=len(moved)) > 0).to_numpy().astype(int)
    flip = moved["x2"].to_numpy() > 1.0  # P(y | x) changes for a sixth of the rows
    y_moved[flip] = 1 - y_moved[flip]
    write_labels(cfg.artifacts_root, "ep", ids_same, y_same, ts=T0 + 2 * 3600)
    write_labels(cfg.artifacts_root, "ep", ids_moved, y_moved, ts=T0 + 2 * 3600)
    run_monitor(cfg, store, now=T0 + 3 * 3600)
    ts = timeseries(store, "ep")
    assert ts["estimate_status"] == ["ok", "unreliable"]
    assert ts["accuracy"][0] - ts["accuracy"][1] > 0.08  # realised accuracy fell
    assert ts["estimated_performance"][0] is not None
    assert ts["estimated_performance"][1] is None  # withheld, not a confident number
    detail = window_detail(store, ts["id"][1])["results"]
    check = detail["estimated"]["reliability"]
    assert not check["band"][0] <= check["realised"] <= check["band"][1]
    assert any("concept shift" in n for n in detail["performance_notes"])
    # no concept shift: the estimate's band holds the realised accuracy
    ok = window_detail(store, ts["id"][0])["results"]["estimated"]["reliability"]
    assert ok["band"][0] <= ok["realised"] <= ok["band"][1]


def test_label_drift_reports_the_base_rate_against_training(tmp_path):
    rng = np.random.default_rng(31)
    cfg, store, v = setup(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", rng)
    frame, ids = _hour(cfg, v, rng, 0)
    y = (frame["x0"] + rng.normal(scale=0.5, size=len(frame)) > 0).to_numpy().astype(int)
    y[rng.random(len(y)) < 0.5] = 1  # the base rate rises from about 0.5 to about 0.75
    write_labels(cfg.artifacts_root, "ep", ids, y, ts=T0 + 3600)
    run_monitor(cfg, store, now=T0 + 2 * 3600)
    ts = timeseries(store, "ep")
    assert abs(ts["base_rate"][0] - y.mean()) < 1e-9
    assert ts["label_drift"][0] is not None
    drift = window_detail(store, ts["id"][0])["results"]["label_drift"]
    assert drift["drifted"]
    assert 0.45 < drift["base_rate"]["reference"] < 0.55
    assert 0.7 < drift["base_rate"]["current"] < 0.8
    # the model's predictions on the same rows did not follow the labels
    assert 0.45 < drift["base_rate"]["predicted"] < 0.55


def test_windows_below_min_window_rows_are_not_scored(tmp_path):
    """Guards "too few rows": no drift, estimate or live metric from a handful of rows."""
    rng = np.random.default_rng(32)
    cfg, store, v = setup(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", rng)
    _hour(cfg, v, rng, 0, n=120)  # below the default min_window_rows (200)
    frame, ids = _hour(cfg, v, rng, 1, n=600)
    y = (frame["x0"] > 0).astype(int).to_numpy()
    write_labels(cfg.artifacts_root, "ep", ids[:150], y[:150], ts=T0 + 2 * 3600)
    run_monitor(cfg, store, now=T0 + 3 * 3600)
    ts = timeseries(store, "ep")
    assert ts["rows"] == [120, 600]
    assert ts["drift_score"][0] is None and ts["estimated_performance"][0] is None
    small = window_detail(store, ts["id"][0])["results"]
    assert small["too_few_rows"] == {"rows": 120, "needed": 200}
    assert any("too few rows: 120 of 200 needed" in n for n in small["notes"])
    # 600 rows are scored, but 150 labels are too few for the live metric
    assert ts["drift_score"][1] is not None and ts["estimated_performance"][1] is not None
    assert ts["labels"][1] == 150 and ts["performance"][1] is None
    notes = window_detail(store, ts["id"][1])["results"]["performance_notes"]
    assert "too few labelled rows: 150 of 200 needed for the live accuracy" in notes


def test_window_page_says_too_few_rows_and_withholds_an_unreliable_estimate(tmp_path):
    rng = np.random.default_rng(33)
    cfg, store, v = setup(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", rng)
    _hour(cfg, v, rng, 0, n=120)
    moved, ids = _hour(cfg, v, rng, 1)
    y = (moved["x0"] > 0).to_numpy().astype(int)
    flip = moved["x2"].to_numpy() > 0.8
    y[flip] = 1 - y[flip]
    write_labels(cfg.artifacts_root, "ep", ids, y, ts=T0 + 2 * 3600)
    run_monitor(cfg, store, now=T0 + 3 * 3600)
    small, shifted = timeseries(store, "ep")["id"]
    html = page(cfg, store, f"/windows/{small}")
    assert "Not scored: too few rows (120 of 200 needed)" in html
    html = page(cfg, store, f"/windows/{shifted}")
    assert "unreliable</span> withheld" in html and "concept shift" in html
    assert 'id="label-drift"' in html
