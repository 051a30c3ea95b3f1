"""Bench (not collected by pytest): each dashboard page's server time with a year of hourly
monitor windows for 50 features (8,760 windows, each with per-feature drift detail and
histograms). Times the context build + template render the server does per request.

    .venv/bin/python tests/ui/bench_pages.py [--db PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

HOURS, FEATURES = 365 * 24, 50
T0 = 1_704_067_200.0  # 2024-01-01


def fill(store) -> int:
    from loopml.store.tables import alerts, monitor_results, monitor_windows

    rng_edges = [i / 2 - 5 for i in range(21)]
    with store.engine.begin() as conn:
        conn.execute(
            insert(monitor_windows),
            [
                dict(
                    endpoint="ep",
                    version=1,
                    role="champion",
                    start=T0 + i * 3600.0,
                    end=T0 + (i + 1) * 3600.0,
                    rows=1000 + i % 50,
                    labels=500,
                    metric="accuracy",
                    performance=0.8,
                    accuracy=0.8 - (i % 97) / 1000,
                    estimated_accuracy=0.81,
                    drift_score=(i % 100) / 100,
                    drifted=i % 100 > 30,
                    n_drifted=i % 7,
                    prediction_drift=0.1,
                    fairness_ratio=0.9 - (i % 13) / 100,
                    latency_p50=3.0,
                    latency_p99=9.0 + i % 5,
                    errors=i % 3,
                    log_files="f",
                    label_files="l",
                    computed_at=0.0,
                    updated_at=0.0,
                )
                for i in range(HOURS)
            ],
        )
        for chunk in range(0, HOURS, 500):
            conn.execute(
                insert(monitor_results),
                [
                    {
                        "window_id": i + 1,
                        "results": {
                            "drift": {
                                "share": 0.1,
                                "drift_share": 0.3,
                                "drifted": False,
                                "drifted_columns": [],
                                "columns": [
                                    {
                                        "column": f"f{j}",
                                        "kind": "numeric",
                                        "method": "psi",
                                        "value": 0.01 * j + (i % 10) / 100,
                                        "threshold": 0.2,
                                        "drifted": j > 45,
                                        "p_value": 0.5,
                                        "evidence": {
                                            "edges": rng_edges,
                                            "reference": [50] * 22,
                                            "current": [(i + j) % 50] * 22,
                                        },
                                    }
                                    for j in range(FEATURES)
                                ],
                            },
                            "quality": [
                                {
                                    "check": "nulls",
                                    "column": "f1",
                                    "severity": "warning",
                                    "message": "null rate 2% > 1%",
                                    "evidence": {"expected": 0.01, "observed": 0.02},
                                }
                            ],
                        },
                    }
                    for i in range(chunk, min(HOURS, chunk + 500))
                ],
            )
        conn.execute(
            insert(alerts),
            [
                dict(
                    rule="drift",
                    on="drift",
                    endpoint="ep",
                    subject="dataset",
                    severity="warning",
                    status="open" if i == 0 else "resolved",
                    message="drift",
                    evidence={},
                    first_seen=T0 + i * 86400,
                    last_seen=T0 + i * 86400 + 3600,
                    window_id=i * 24 + 1,
                    created_at=0.0,
                    updated_at=0.0,
                )
                for i in range(100)
            ],
        )
    run = store.runs.start(
        project="p", model="m", params={}, snapshots={}, python="3.11", packages={}
    )
    v = store.versions.register(
        model="m",
        run_id=run,
        status="candidate",
        format="skops",
        artifact="a" * 64,
        signature={"columns": [], "classes": [0, 1]},
        metrics={"accuracy": 0.8},
        slices=[],
        gates=[],
        snapshots={},
        manifest={},
    )
    store.endpoints.deploy("ep", v, actor="bench")
    return HOURS


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    from loopml.config import Config
    from loopml.store import Store
    from loopml.ui import pages
    from loopml.ui.app import environment

    tmp = Path(tempfile.mkdtemp(prefix="loopml-ui-bench-"))
    cfg = Config.model_validate(
        {
            "project": "bench",
            "store": f"sqlite:///{tmp / 'db.sqlite'}",
            "artifacts": str(tmp / "artifacts"),
            "data": {"train": "x.parquet", "target": "y"},
            "model": {"name": "m", "train": "t.py:train"},
        }
    )
    store = Store(cfg.store_url)
    t = time.perf_counter()
    fill(store)
    print(
        f"filled {HOURS} windows x {FEATURES} features in {time.perf_counter() - t:.1f} s "
        f"({(tmp / 'db.sqlite').stat().st_size / 1e6:.0f} MB)"
    )
    env = environment()
    mid = HOURS // 2
    cases = {
        "overview": ("overview.html", lambda: pages.overview(store, cfg)),
        "endpoint (30 days)": ("endpoint.html", lambda: pages.endpoint(store, cfg, "ep")),
        "endpoint (?days=365)": (
            "endpoint.html",
            lambda: pages.endpoint(store, cfg, "ep", days=365),
        ),
        "window (50 features)": ("window.html", lambda: pages.window(store, cfg, mid)),
        "version": ("version.html", lambda: pages.version(store, cfg, 1)),
        "decisions": ("decisions.html", lambda: pages.decisions(store, cfg)),
        "review (no log)": ("review.html", lambda: pages.review(store, cfg)),
    }
    worst = 0.0
    for name, (template, build) in cases.items():
        times = []
        for _ in range(args.repeat + 1):
            t = time.perf_counter()
            ctx = build()
            html = env.get_template(template).render(ctx=ctx, who=None, path="/x")
            times.append(time.perf_counter() - t)
        times = times[1:]  # the first includes compiling the template
        med, top = statistics.median(times) * 1000, max(times) * 1000
        worst = max(worst, med)
        print(
            f"{name:24s} median {med:6.1f} ms   max {top:6.1f} ms   html {len(html) / 1e3:6.0f} kB"
        )
    print(
        f"budget 300 ms per page: {'met' if worst <= 300 else 'NOT met'} (worst median {worst:.0f} ms)"
    )
    return 0 if worst <= 300 else 1


if __name__ == "__main__":
    sys.exit(main())
