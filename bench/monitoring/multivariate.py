"""Multivariate drift benchmark (issue 11 item 12): the monitor's domain classifier on a drift
no single column shows, a correlation that flips sign.

The reference is 100k rows (two correlated standard normals ``a``, ``b``, three independent
ones and a two-level category), profiled as ``loopml run`` profiles a training set, so it keeps
its 2,000-row sample. Each window is 10k rows profiled with a 2,000-row sample as the monitor
does, then compared with ``stats.multivariate.sample_drift`` (the monitor's call). Half the
windows keep the correlation (false alarms), half flip it (detections); the per-column drift
of ``a`` and ``b`` is counted too, to show that no single column sees the change.

    .venv/bin/python bench/monitoring/multivariate.py                 # 100 + 100 windows
    .venv/bin/python bench/monitoring/multivariate.py --windows 30 --rho 0.3
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from loopml.stats import DatasetProfile, calibrate_thresholds, dataset_drift
from loopml.stats.multivariate import sample_drift


def correlated(rng: np.random.Generator, n: int, rho: float) -> pd.DataFrame:
    z = rng.normal(size=(n, 2))
    a = z[:, 0]
    b = rho * a + np.sqrt(1 - rho**2) * z[:, 1]
    frame = pd.DataFrame({"a": a, "b": b, **{f"x{j}": rng.normal(size=n) for j in range(3)}})
    frame["g"] = rng.choice(["u", "v"], size=n)
    return frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", type=int, default=100, help="windows of each kind")
    ap.add_argument("--rows", type=int, default=10_000, help="rows per window")
    ap.add_argument("--rho", type=float, default=0.6, help="reference correlation of a and b")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    reference = DatasetProfile.from_frame(correlated(rng, 100_000, args.rho))
    thresholds = calibrate_thresholds(reference, args.rows)
    out: dict[str, list[float]] = {"same": [], "flipped": []}
    column_flags = {"same": 0, "flipped": 0}
    seconds = []
    for _ in range(args.windows):
        for kind, rho in (("same", args.rho), ("flipped", -args.rho)):
            window = DatasetProfile.from_frame(
                correlated(rng, args.rows, rho), reference=reference, sample_rows=2000
            )
            t0 = time.perf_counter()
            md = sample_drift(reference, window)
            seconds.append(time.perf_counter() - t0)
            assert md is not None
            out[kind].append(md.auc)
            drift = dataset_drift(reference, window, thresholds=thresholds)
            column_flags[kind] += len(drift.drifted_columns)
    same, flipped = np.array(out["same"]), np.array(out["flipped"])
    n = args.windows
    print(
        f"| windows of {args.rows} rows | correlation | windows | flagged (AUC >= 0.55) | "
        "AUC median [min, max] | columns flagged by univariate drift |\n|---|---|---:|---:|---|---:|"
    )
    for kind, aucs, rho in (("same", same, args.rho), ("flipped", flipped, -args.rho)):
        print(
            f"| {kind} | {rho:+.2f} | {n} | {(aucs >= 0.55).sum()} ({(aucs >= 0.55).mean():.0%}) "
            f"| {np.median(aucs):.3f} [{aucs.min():.3f}, {aucs.max():.3f}] "
            f"| {column_flags[kind]} of {n * 6} |"
        )
    print(
        f"\nclassifier {np.median(seconds):.2f} s per window (median, 1 thread); "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
