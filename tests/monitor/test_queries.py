"""The dashboard's queries: a year of hourly windows with 50 features' detail reads fast,
because the time series touches only summary columns."""

from __future__ import annotations

import json
import time

from sqlalchemy import insert

from loopml.monitor.queries import open_alerts, timeseries, window_detail
from loopml.store import Store
from loopml.store.tables import monitor_results, monitor_windows

from ._log import T0

HOURS = 365 * 24


def _detail(i: int) -> dict:
    cols = [
        {
            "column": f"f{j}",
            "method": "wasserstein",
            "value": 0.01 * j,
            "drifted": False,
            "evidence": {
                "edges": list(range(21)),
                "reference": [50] * 22,
                "current": [i % 50] * 22,
            },
        }
        for j in range(50)
    ]
    return {"drift": {"share": 0.0, "columns": cols}, "quality": []}


# On an idle machine the series reads in about 0.3 s; the suite runs beside other work (pytest -n 2
# on two shared cores), so it bounds the best of three reads at 1 s, which still fails when the
# series reads the per-column detail (several seconds for these 150 MB of JSON).
SERIES_BOUND_S = 1.0


def test_a_year_of_hourly_windows_reads_fast(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    rows = [
        dict(
            endpoint="ep",
            version=1,
            role="champion",
            start=T0 + i * 3600.0,
            end=T0 + (i + 1) * 3600.0,
            rows=1000,
            labels=500,
            accuracy=0.8,
            estimated_accuracy=0.81,
            drift_score=0.0,
            fairness_ratio=0.9,
            latency_p50=3.0,
            latency_p99=9.0,
            log_files="f",
            label_files="l",
            computed_at=0.0,
            updated_at=0.0,
        )
        for i in range(HOURS)
    ]
    detail = json.dumps(_detail(0))  # serialised once: 8760 json.dumps calls cost ~15 s here
    with store.engine.begin() as conn:
        conn.execute(insert(monitor_windows), rows)
        conn.exec_driver_sql(
            f"INSERT INTO {monitor_results.name} (window_id, results) VALUES (?, ?)",
            [(i + 1, detail) for i in range(HOURS)],
        )
    store.monitoring.save_window(
        endpoint="other",
        version=2,
        role="champion",
        start=T0,
        end=T0 + 3600,
        rows=1,
        results={},
        log_files="f",
        label_files="l",
    )
    timeseries(store, "ep")  # warm the connection pool
    times = []
    for _ in range(3):
        t = time.perf_counter()
        series = timeseries(store, "ep")
        times.append(time.perf_counter() - t)
    best = min(times)
    print(
        f"time series of {HOURS} windows: best of 3 reads {best * 1000:.0f} ms "
        f"({', '.join(f'{x * 1000:.0f}' for x in times)} ms)"
    )
    assert series["n"] == HOURS and series["start"][0] == T0 and series["accuracy"][-1] == 0.8
    assert best < SERIES_BOUND_S, f"time series of {HOURS} windows took {best * 1000:.0f} ms"
    times = []
    for _ in range(3):
        t = time.perf_counter()
        one = window_detail(store, series["id"][100])
        times.append(time.perf_counter() - t)
    assert min(times) < 0.2, f"one window's detail took {min(times) * 1000:.0f} ms"
    assert len(one["results"]["drift"]["columns"]) == 50
    assert store.monitoring.series("ep", limit=3)[-1]["start"] == series["start"][-1]
    assert open_alerts(store) == []
