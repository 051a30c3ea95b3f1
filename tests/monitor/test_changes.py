"""A monitoring pass looks only at the windows whose inputs changed since this process's last
pass (``monitor.changes``), and what it stores is what a pass that looks at every window
stores. Real Parquet parts, the real SQLite file."""

from __future__ import annotations

import numpy as np

from loopml.monitor import changes, run_monitor
from loopml.monitor.queries import timeseries

from ._log import T0, uuid7_ids, write_labels, write_predictions
from ._project import features, log_hour, predict, setup

HOURS = 6


def test_a_pass_looks_only_at_windows_whose_inputs_changed(tmp_path, store_url) -> None:
    """Guards against a pass costing in proportion to the time served: every closed window's
    label parts listed and compared each minute, for months."""
    rng = np.random.default_rng(3)
    cfg, store, v = setup(tmp_path, store_url, rng)
    logged = [log_hour(cfg, v["id"], rng, 600, h, uuid7=True) for h in range(HOURS)]
    now = T0 + (HOURS + 1) * 3600
    first = run_monitor(cfg, store, now=now)["endpoints"]["ep"]
    assert (first["computed"], first["looked_at"]) == (HOURS, HOURS)
    again = run_monitor(cfg, store, now=now)["endpoints"]["ep"]
    assert (again["looked_at"], again["unchanged"], again["computed"]) == (0, HOURS, 0)

    # labels for hour 1's requests arrive late: that window alone is looked at, and relabelled
    _, pred, ids = logged[1]
    write_labels(cfg.artifacts_root, "ep", ids[:300], pred[:300], ts=now + 60)
    res = run_monitor(cfg, store, now=now + 120)["endpoints"]["ep"]
    assert (res["looked_at"], res["relabelled"], res["computed"]) == (1, 1, 0)
    assert timeseries(store, "ep")["labels"][1] == 300

    # a late part of hour 3 (a replica compacted late): hour 3 alone, computed again
    frame = features(rng, 50)
    write_predictions(
        cfg.artifacts_root,
        "ep",
        frame,
        version=v["id"],
        prediction=predict(frame)[0],
        ts=np.full(50, T0 + 3 * 3600 + 10.0),
        ids=uuid7_ids(np.full(50, T0 + 3 * 3600 + 10.0), rng),
    )
    res = run_monitor(cfg, store, now=now + 180)["endpoints"]["ep"]
    assert (res["looked_at"], res["computed"]) == (1, 1)
    assert timeseries(store, "ep")["rows"][3] == 650

    # a window that closes since the last pass is looked at (and computed)
    log_hour(cfg, v["id"], rng, 600, HOURS, uuid7=True)
    res = run_monitor(cfg, store, now=now + 3600)["endpoints"]["ep"]
    assert (res["looked_at"], res["computed"]) == (1, 1)

    # a new process (nothing kept) looks at every window and finds each stored as it is
    stored = timeseries(store, "ep")
    changes.forget()
    fresh = run_monitor(cfg, store, now=now + 3600)["endpoints"]["ep"]
    assert (fresh["looked_at"], fresh["unchanged"], fresh["computed"]) == (HOURS + 1,) * 2 + (0,)
    assert fresh["relabelled"] == 0 and timeseries(store, "ep") == stored


def test_labels_whose_ids_are_not_ordered_by_time_make_every_window_looked_at(
    tmp_path, store_url
) -> None:
    """Guards against skipping a window a label part may label: ids of another kind (a
    client's own) say nothing about the time of the request they label."""
    rng = np.random.default_rng(4)
    cfg, store, v = setup(tmp_path, store_url, rng)
    frame = features(rng, 400)
    pred = predict(frame)[0]
    ts = T0 + rng.uniform(0, 2 * 3600, 400)
    ids = [f"client-{i}" for i in range(400)]
    write_predictions(
        cfg.artifacts_root, "ep", frame, version=v["id"], ts=ts, prediction=pred, ids=ids
    )
    now = T0 + 3 * 3600
    assert run_monitor(cfg, store, now=now)["endpoints"]["ep"]["computed"] == 2
    late = [i for i, t in enumerate(ts) if t < T0 + 3600][:100]
    write_labels(cfg.artifacts_root, "ep", [ids[i] for i in late], pred[late], ts=now + 5)
    res = run_monitor(cfg, store, now=now + 60)["endpoints"]["ep"]
    # both are looked at, and both joined with the part (ids of this kind are joined everywhere)
    assert res["looked_at"] == 2 and res["relabelled"] == 2
    assert timeseries(store, "ep")["labels"] == [100, 0]
