"""Bench (not collected by pytest): the CPU of a monitoring pass in a long-running process
(``loopml serve``'s background process) as the log's history grows. The log holds ``--hours``
closed hourly windows of ``--parts`` parts each, with their labels (UUIDv7 request ids, as the
server writes them); after a first pass, each of ``--passes`` passes finds one new part of
predictions in the open hour and one new label part for the latest closed hour: what a
minute of traffic brings. Times are CPU seconds of this process.

    .venv/bin/python -m tests.monitor.bench_pass --hours 24
    .venv/bin/python -m tests.monitor.bench_pass --hours 168
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from loopml.monitor import run_monitor

from ._log import T0, uuid7_ids, write_labels, write_predictions
from ._project import features, predict, setup


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--parts", type=int, default=12, help="parts per hour")
    ap.add_argument("--rows", type=int, default=200, help="rows per part")
    ap.add_argument("--passes", type=int, default=5)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        cfg, store, v = setup(Path(tmp), f"sqlite:///{tmp}/loopml.db", rng, multivariate_rows=0)

        def part(t0: float, n: int) -> tuple[list[str], np.ndarray]:
            frame = features(rng, n)
            pred, score = predict(frame)
            ts = np.sort(t0 + rng.uniform(0, 3600 / a.parts, n))
            ids = uuid7_ids(ts, rng)
            write_predictions(
                cfg.artifacts_root,
                "ep",
                frame,
                version=v["id"],
                ts=ts,
                prediction=pred,
                score=score,
                ids=ids,
            )
            return ids, pred

        for h in range(a.hours):
            for k in range(a.parts):
                ids, pred = part(T0 + h * 3600 + k * 3600 / a.parts, a.rows)
                write_labels(cfg.artifacts_root, "ep", ids, pred, ts=T0 + (h + 1) * 3600 + k)
        closed_ids, closed_pred = ids, pred  # the latest closed hour's last part
        now = T0 + a.hours * 3600 + 60
        t = time.process_time()
        first = run_monitor(cfg, store, now=now)["endpoints"]["ep"]
        first_s = time.process_time() - t
        times = []
        for i in range(a.passes):
            part(T0 + a.hours * 3600 + i * 60, a.rows)  # the open hour
            late = slice(i, None, a.passes)  # late labels of the latest closed hour
            labels = closed_pred[late]
            write_labels(cfg.artifacts_root, "ep", closed_ids[late], labels, ts=now + i * 60)
            t = time.process_time()
            res = run_monitor(cfg, store, now=now + (i + 1) * 60)["endpoints"]["ep"]
            times.append(time.process_time() - t)
        print(
            f"{a.hours} closed windows x {a.parts} parts: first pass {first_s:.2f} s CPU "
            f"({first['computed']} computed); a later pass median {statistics.median(times):.3f} s "
            f"(min {min(times):.3f}, max {max(times):.3f}; last looked at "
            f"{res.get('looked_at', 'every')} windows)"
        )


if __name__ == "__main__":
    main()
