"""No-drift false alarms of the default drift rule per column, by window size (issue 11 item
11): windows drawn from the reference's own distribution (``run.py``'s generator, no planted
drift) are judged with the monitor's thresholds (``calibrate_thresholds`` at the window's size,
quantile 0.99) and the default methods (normalised Wasserstein for numbers, Jensen-Shannon for
categories). Target: at most 1% of columns flagged per window.

    .venv/bin/python bench/monitoring/false_alarms.py                   # 200 windows per size
    .venv/bin/python bench/monitoring/false_alarms.py --sizes 200,1000 --windows 50
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import _table

from loopml.stats import DatasetProfile, calibrate_thresholds, dataset_drift


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="200,1000,10000", help="window sizes (rows)")
    ap.add_argument("--windows", type=int, default=200, help="windows per size")
    ap.add_argument("--columns", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    reference = DatasetProfile.from_frame(_table(200_000, args.columns, rng, drift=False))
    print(
        "| window rows | windows | column verdicts | flagged | rate | 95% upper bound |\n"
        "|---:|---:|---:|---:|---:|---:|"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        # the monitor rounds a window's size down to a power of two for its thresholds
        thr = calibrate_thresholds(
            reference, 2 ** math.floor(math.log2(size)), quantile=0.99, seed=size
        )
        flagged = verdicts = 0
        for _ in range(args.windows):
            cur = DatasetProfile.from_frame(
                _table(size, args.columns, rng, drift=False), reference=reference
            )
            res = dataset_drift(reference, cur, thresholds=thr)
            flagged += len(res.drifted_columns)
            verdicts += len(res.columns)
        rate = flagged / verdicts
        upper = rate + 1.96 * math.sqrt(max(rate * (1 - rate), 1 / verdicts) / verdicts)
        print(f"| {size} | {args.windows} | {verdicts} | {flagged} | {rate:.2%} | {upper:.2%} |")


if __name__ == "__main__":
    main()
