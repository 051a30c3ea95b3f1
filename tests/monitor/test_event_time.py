"""Window assignment: event time where the log has it, log time otherwise; paired rows ignored."""

from __future__ import annotations

import numpy as np

from loopml.monitor import run_monitor
from loopml.monitor.queries import timeseries

from ._log import T0, write_labels, write_predictions
from ._project import features, predict, setup


def test_windows_follow_event_time_when_the_column_exists(tmp_path):
    """Guards issue 11 item 8: a replayed backfill lands in the windows of its event times."""
    rng = np.random.default_rng(10)
    cfg, store, v = setup(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", rng)
    frame = features(rng, 900)
    pred, score = predict(frame)
    event = T0 + np.repeat([100.0, 3700.0, np.nan], 300)  # two hours of events, then none
    logged = T0 + 10 * 3600 + rng.uniform(0, 60, 900)  # all logged ten hours later
    ids = write_predictions(
        cfg.artifacts_root,
        "ep",
        frame,
        version=v["id"],
        prediction=pred,
        score=score,
        ts=logged,
        event_time=event,
    )
    y = (frame["x0"] > 0).astype(int).to_numpy()
    write_labels(cfg.artifacts_root, "ep", ids, y, ts=T0 + 11 * 3600)
    run_monitor(cfg, store, now=T0 + 12 * 3600)
    series = timeseries(store, "ep")
    # rows without an event time fall in the window of their log time
    assert series["start"] == [T0, T0 + 3600, T0 + 10 * 3600]
    assert series["rows"] == [300, 300, 300]
    # labels are joined by request id although they arrived long after the event windows
    assert series["labels"] == [300, 300, 300]


def test_windows_follow_log_time_without_the_column(tmp_path):
    rng = np.random.default_rng(11)
    cfg, store, v = setup(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", rng)
    frame = features(rng, 400)
    write_predictions(
        cfg.artifacts_root,
        "ep",
        frame,
        version=v["id"],
        prediction=predict(frame)[0],
        ts=T0 + 2 * 3600 + rng.uniform(0, 3600, 400),
    )
    run_monitor(cfg, store, now=T0 + 4 * 3600)
    series = timeseries(store, "ep")
    assert series["start"] == [T0 + 2 * 3600] and series["rows"] == [400]


def test_paired_rows_are_not_a_series_and_do_not_count_as_canary_rows(tmp_path):
    """Guards the "paired" contract: the champion's off-path answers duplicate canary rows."""
    rng = np.random.default_rng(12)
    cfg, store, v = setup(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", rng)
    frame = features(rng, 300)
    pred = predict(frame)[0]
    ts = T0 + rng.uniform(0, 3600, 300)
    ids = write_predictions(
        cfg.artifacts_root, "ep", frame, version=v["id"], prediction=pred, ts=ts, role="canary"
    )
    write_predictions(
        cfg.artifacts_root,
        "ep",
        frame,
        version=v["id"],
        prediction=pred,
        ts=ts,
        role="paired",
        ids=ids,
    )
    run_monitor(cfg, store, now=T0 + 7200)
    series = timeseries(store, "ep")
    assert series["role"] == ["canary"] and series["rows"] == [300]
