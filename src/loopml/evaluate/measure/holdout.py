"""Is the held-out split fit to judge a model on? Recorded as the ``split`` verdict of a run.

- Degenerate (not judged, blocks): a classification test set holding a single class, where
  ROC AUC, recall and every fairness rate of the missing class are undefined, so the gates'
  verdicts would say nothing (a time split of a table whose latest rows are all one outcome).
- Shifted (warned): the test set's target distribution far from training's, so test metrics
  describe another population than the one trained on. Classification: total variation
  distance between the class shares above ``max_shift`` (0.2: 39% vs 100% positives is 0.61;
  a stratified split is ~0); regression: the test mean more than ``max_shift_sd`` (0.5)
  training standard deviations from the training mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

MAX_SHIFT = 0.2
MAX_SHIFT_SD = 0.5


def _shares(y: pd.Series) -> dict[Any, float]:
    return {
        (k.item() if hasattr(k, "item") else k): float(v)
        for k, v in y.value_counts(normalize=True).items()
    }


def judge_split(
    y_train: pd.Series,
    y_test: pd.Series,
    task: str,
    how: str,
    *,
    max_shift: float = MAX_SHIFT,
    max_shift_sd: float = MAX_SHIFT_SD,
) -> dict[str, Any]:
    """The ``split`` verdict (a stored gate verdict's shape) for one train/test split."""
    fix = (
        "Set data.test_from so that the test rows hold every class, or data.split: stratified."
        if how.startswith("by time")
        else "Hold out more rows (data.test_size)."
    )
    evidence: dict[str, Any] = {"how": how, "n_train": len(y_train), "n_test": len(y_test)}
    warnings: list[str] = []
    if task == "classification":
        train_s, test_s = _shares(y_train), _shares(y_test)
        evidence.update(train_shares=train_s, test_shares=test_s)
        if len(test_s) < 2:
            only = next(iter(test_s), None)
            return {
                "gate": "split",
                "verdict": "insufficient_data",
                "blocking": True,
                "message": f"Not judged: the test split ({how}, {len(y_test):,} rows) holds only "
                f"the class {only!r}, so ROC AUC, recall and the rates of the other class are "
                f"undefined and no gate can judge the model. {fix}",
                "evidence": evidence,
                "seconds": 0.0,
            }
        missing = [c for c in train_s if c not in test_s]
        if missing:
            warnings.append(f"classes {missing} of the training rows are absent from the test rows")
        labels = set(train_s) | set(test_s)
        tvd = 0.5 * sum(abs(train_s.get(c, 0.0) - test_s.get(c, 0.0)) for c in labels)
        evidence["shift"] = tvd
        if tvd > max_shift:
            shown = ", ".join(
                f"{c!r} {train_s.get(c, 0.0):.0%} vs {test_s.get(c, 0.0):.0%}"
                for c in sorted(labels, key=str)[:5]
            )
            warnings.append(
                f"the test rows' classes differ strongly from training's (train vs test: "
                f"{shown}; distance {tvd:.2f} > {max_shift:g}), so test metrics describe "
                "another mix than the one trained on"
            )
    else:
        a, b = y_train.to_numpy(dtype=float), y_test.to_numpy(dtype=float)
        sd = float(np.nanstd(a)) or 1.0
        shift = abs(float(np.nanmean(b)) - float(np.nanmean(a))) / sd
        evidence.update(train_mean=float(np.nanmean(a)), test_mean=float(np.nanmean(b)))
        evidence["shift"] = shift
        if shift > max_shift_sd:
            warnings.append(
                f"the test target's mean {np.nanmean(b):.4g} is {shift:.2f} training standard "
                f"deviations from training's {np.nanmean(a):.4g} (> {max_shift_sd:g})"
            )
    evidence["warnings"] = warnings
    message = f"Train {len(y_train):,} / test {len(y_test):,} rows ({how})."
    if warnings:
        message += " Warning: " + "; ".join(warnings) + "."
    return {
        "gate": "split",
        "verdict": "pass",
        "blocking": False,
        "message": message,
        "evidence": evidence,
        "seconds": 0.0,
    }
