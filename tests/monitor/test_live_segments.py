"""The monitor sees recent traffic (issue 13 item 5): rows still in the server's log segments
are read beside the compacted parts, the open window is reported as provisional with what it
waits for, and compaction afterwards neither loses nor doubles a row."""

from __future__ import annotations

import numpy as np

from loopml.logs.compaction import compact
from loopml.logs.predlog import PredictionLog
from loopml.monitor import run_monitor
from loopml.monitor.queries import timeseries
from loopml.server import monitor_live

from ._log import T0
from ._project import FEATURES, features, predict, setup


def _log_requests(log, v, rng, start, n_requests, rows, tag):
    ids_all, y_all = [], []
    for r in range(n_requests):
        frame = features(rng, rows)
        pred, score = predict(frame)
        ids = [f"{tag}{r}-{i}" for i in range(rows)]
        log.log_predictions_sync(
            endpoint="ep",
            version=v["id"],
            role="champion",
            request_ids=ids,
            features={c: frame[c].tolist() for c in [*FEATURES, "g"]},
            predictions=pred.tolist(),
            probabilities=np.column_stack([1 - score, score]).tolist(),
            latency_ms=3.0,
            ts_us=int((start + r) * 1e6),
        )
        ids_all += ids
        y_all += (frame["x0"] > 0).astype(int).tolist()
    return ids_all, y_all


def test_rows_in_open_segments_are_monitored_and_compaction_changes_nothing(tmp_path):
    rng = np.random.default_rng(50)
    cfg, store, v = setup(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", rng)
    store.endpoints.deploy("ep", v, actor="test")
    root = cfg.artifacts_root
    now = T0 + 3600 + 600  # ten minutes into the second hour
    with PredictionLog(root) as log:
        ids, y = _log_requests(log, v, rng, T0 + 60, 30, 20, "a")  # 600 rows, first hour
        _log_requests(log, v, rng, T0 + 3600 + 60, 6, 20, "b")  # 120 rows, second hour
        log.labels.append_sync(log.encode_labels("ep", ids, y, int((T0 + 3700) * 1e6)))

        # without the server's reader, nothing is compacted yet: the pass sees nothing
        assert run_monitor(cfg, store, now=now)["windows"] == 0
        out = run_monitor(cfg, store, now=now, live=monitor_live(cfg))
        # rows appended to the same segment for the open hour leave the closed window as is
        _log_requests(log, v, rng, T0 + 3600 + 200, 2, 10, "c")
        later = run_monitor(cfg, store, now=now, live=monitor_live(cfg))
        assert later["endpoints"]["ep"]["computed"] == 0
        assert later["endpoints"]["ep"]["provisional"][0]["rows"] == 140
    ep = out["endpoints"]["ep"]
    assert ep["computed"] == 1
    ts = timeseries(store, "ep")
    assert ts["rows"] == [600] and ts["labels"] == [600]
    from_live = _results(store)
    # the features of the closed window were read from the segment (they are not kept)
    drift = {c["column"]: c for c in from_live["drift"]["columns"]}
    assert set(drift) >= set(FEATURES) and all(drift[c]["n_current"] == 600 for c in FEATURES)
    (open_window,) = ep["provisional"]
    assert open_window["rows"] == 120 and open_window["status"] == "waiting"
    assert open_window["message"] == (
        f"window 2024-03-01 01:00-02:00 (version {v['id']}, champion): 120 rows of 200 needed"
    )

    compact(root)  # the segments become Parquet parts: the window is recomputed, same rows
    again = run_monitor(cfg, store, now=now, live=monitor_live(cfg))
    assert again["endpoints"]["ep"]["computed"] == 1
    ts = timeseries(store, "ep")
    assert ts["rows"] == [600] and ts["labels"] == [600]
    assert again["endpoints"]["ep"]["provisional"][0]["rows"] == 140
    from_parts = _results(store)
    # the same drift from the segment's rows as from the parts
    assert from_parts["drift"]["columns"] == from_live["drift"]["columns"]


def _results(store):
    (row,) = store.monitoring.series("ep", limit=10)
    return store.monitoring.window(row["id"])["results"]


def test_live_rows_keep_no_features_and_a_window_read_stops_at_its_token(tmp_path):
    from loopml.logs.layout import PREDICTIONS
    from loopml.logs.logreader import _decoded

    rng = np.random.default_rng(51)
    cfg, _, v = setup(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", rng)
    live = monitor_live(cfg)
    with PredictionLog(cfg.artifacts_root) as log:
        _log_requests(log, v, rng, T0 + 60, 5, 10, "a")
        ((token, rows),) = live(PREDICTIONS, "ep")
        _log_requests(log, v, rng, T0 + 70, 5, 10, "b")  # appended after the token's read
        assert rows.num_rows == 50 and not set(FEATURES) & set(rows.column_names)
        # what this process keeps of this test's segments (other tests' may be there too)
        kept = [t for (seg, _), (_, t) in _decoded.items() if tmp_path in seg.parents and t]
        assert kept and all(not set(FEATURES) & set(t.column_names) for t in kept)
        window = live.window(PREDICTIONS, "ep", token, T0, T0 + 3600)
        assert window is not None and window.num_rows == 50
        assert set(FEATURES) <= set(window.column_names)
        assert window.column("_request_id").to_pylist() == rows.column("_request_id").to_pylist()
        # a narrower window: only its rows
        assert live.window(PREDICTIONS, "ep", token, T0 + 62, T0 + 64).num_rows == 20
        assert len(live(PREDICTIONS, "ep")[0][1]) == 100
    compact(cfg.artifacts_root)
    assert live.window(PREDICTIONS, "ep", token, T0, T0 + 3600) is None  # compacted since
