"""Fairness on 1M rows, 2 sensitive columns (2 x 9 groups): loopml vs fairlearn in one run.

Both compute the same numbers: per-group selection rate, TPR, FPR and precision, and the
worst-case demographic-parity ratio. loopml also gives Wilson intervals and min-size checks.
The numbers are compared so the timing is of equal work. Run:
``.venv/bin/python bench/fairness/run.py [--rows 1000000]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench/, after this folder

import numpy as np
import pandas as pd
from harness import Clock


def make_data(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["1", "2"], n)
    race = rng.choice(
        [str(i) for i in range(1, 10)], n, p=[0.6, 0.1, 0.05, 0.05, 0.05, 0.05, 0.04, 0.03, 0.03]
    )
    y = (rng.random(n) < 0.5).astype(int)
    score = 0.5 * y + 0.25 + rng.normal(0, 0.2, n) - 0.2 * ((sex == "2") & (race == "2"))
    return pd.DataFrame({"SEX": sex, "RAC1P": race, "y": y, "yhat": (score > 0.5).astype(int)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="200k rows instead of 1M")
    args = parser.parse_args()
    if args.quick:
        args.rows = min(args.rows, 200_000)
    df = make_data(args.rows)
    sf = df[["SEX", "RAC1P"]]

    from loopml.evaluate.gating.fairness import group_fairness

    with Clock() as ours:
        rep = group_fairness(df, df["y"], df["yhat"], sensitive=["SEX", "RAC1P"])

    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_ratio,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import precision_score

    with Clock() as theirs:
        mf = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
                "precision": lambda a, b: precision_score(a, b, zero_division=0),
            },
            y_true=df["y"],
            y_pred=df["yhat"],
            sensitive_features=sf,
        )
        ratios = mf.ratio()
        dp = demographic_parity_ratio(df["y"], df["yhat"], sensitive_features=sf)

    assert abs(rep.criteria["demographic_parity"]["ratio"] - dp) < 1e-9
    for rate in ("selection_rate", "tpr", "fpr", "precision"):
        assert abs(rep.rates[rate]["ratio"] - ratios[rate]) < 1e-9, rate
    print(
        f"rows={args.rows:,} groups={len(rep.groups)} dp_ratio={dp:.4f} "
        f"(worst {rep.rates['selection_rate']['worst_group']})"
    )
    print(f"loopml   group_fairness (4 rates + Wilson + ratios): {ours.wall:8.3f} s")
    print(
        f"fairlearn MetricFrame (4 rates) + ratio() + demographic_parity_ratio: {theirs.wall:8.3f} s"
    )
    print(f"speed-up: {theirs.wall / ours.wall:.1f}x (goal >= 10x)")


if __name__ == "__main__":
    main()
