"""Multivariate drift in the monitor: the reference's stored row sample against a window's,
on a drift that no single column shows (a correlation that flips), issue 11 item 12."""

from __future__ import annotations

import numpy as np
import pandas as pd

from loopml.monitor import run_monitor
from loopml.monitor.queries import open_alerts, timeseries, window_detail
from loopml.stats import DatasetProfile
from loopml.stats.multivariate import sample_drift
from loopml.store import Store

from ._log import T0, make_config, page, register, write_predictions


def correlated(rng: np.random.Generator, n: int, rho: float) -> pd.DataFrame:
    """Two standard normals with correlation ``rho``, three independent ones and a category."""
    z = rng.normal(size=(n, 2))
    a = z[:, 0]
    b = rho * a + np.sqrt(1 - rho**2) * z[:, 1]
    frame = pd.DataFrame({"a": a, "b": b, **{f"x{j}": rng.normal(size=n) for j in range(3)}})
    frame["g"] = rng.choice(["u", "v"], size=n)
    return frame


def test_the_monitor_flags_a_correlation_flip_that_no_column_shows(tmp_path):
    rng = np.random.default_rng(40)
    cfg = make_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        alerts=[{"name": "drift", "on": "drift", "k": 1, "m": 1}],
    )
    store = Store(cfg.store_url)
    train = correlated(rng, 20_000, 0.8)
    pred = (train["a"] > 0).astype(int).to_numpy()
    v = register(store, cfg, train.assign(y=pred), pred, pred * 0.8 + 0.1, metrics={})
    for hour, rho in enumerate([0.8, -0.8]):
        frame = correlated(rng, 4000, rho)
        write_predictions(
            cfg.artifacts_root,
            "ep",
            frame,
            version=v["id"],
            prediction=(frame["a"] > 0).astype(int).to_numpy(),
            ts=T0 + hour * 3600 + rng.uniform(0, 3600, len(frame)),
        )
    run_monitor(cfg, store, now=T0 + 2 * 3600)
    ts = timeseries(store, "ep")
    assert ts["n_drifted"] == [0, 0]  # every column's own distribution is unchanged
    same, flipped = ts["multivariate_auc"]
    assert same < 0.55 <= flipped
    detail = window_detail(store, ts["id"][1])["results"]["multivariate"]
    assert detail["drifted"] and detail["n_reference"] == 2000 and detail["n_current"] == 2000
    assert "y" not in detail["columns"]  # the training target kept in the sample is left out
    (alert,) = open_alerts(store, endpoint="ep")
    assert alert["evidence"]["multivariate_auc"] == flipped
    html = page(cfg, store, f"/windows/{ts['id'][1]}")
    assert 'id="multivariate"' in html and "multivariate drift</span>" in html


def test_correlation_flip_is_found_in_ten_thousand_row_windows_without_false_alarms():
    """Detection and false-alarm rates over simulated windows (bench/monitoring/multivariate.py
    runs 100 of each for the figures)."""
    rng = np.random.default_rng(41)
    reference = DatasetProfile.from_frame(correlated(rng, 100_000, 0.6))
    hits = alarms = 0
    windows = 10
    for _ in range(windows):
        for rho in (0.6, -0.6):
            window = DatasetProfile.from_frame(
                correlated(rng, 10_000, rho), reference=reference, sample_rows=2000
            )
            md = sample_drift(reference, window)
            if rho < 0:
                hits += md.drifted
            else:
                alarms += md.drifted
    assert hits == windows and alarms == 0
