"""Decay: "the champion has become worse than it was", the question a retraining can answer.

The baseline is the champion's *own live level*: its metric over its first
``retrain.decay_baseline_rows`` labelled rows in production (the first monitor windows of its
series as champion), or ``retrain.decay_floor`` when set. Not its offline test score: a base
rate that moved between the test set and production shifts the live level for reasons no
retraining can fix, and judging against the test score made a freshly promoted model
"decayed" at once.

Each later window is judged with an interval, not a point estimate: it breaches when the drop
below the baseline exceeds ``monitor.max_performance_drop`` even at the low end of a one-sided
95% interval of the drop. For proportions (accuracy and the like) the interval is the normal
one of a difference of two proportions; for other metrics the standard error comes from the
window-to-window spread of the baseline windows, scaled by rows. Before labels arrive, the
label-free estimate is judged the same way against its own baseline (the estimate's first
windows). ``control.triggers`` adds k-of-m persistence on top.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from loopml.config import Config
from loopml.evaluate.measure.metrics import LOWER_IS_BETTER

Z = 1.645  # one-sided 95%
PROPORTIONS = ("accuracy", "balanced_accuracy", "precision", "recall", "error_rate")
SOURCES = (("performance", "labels", "live"), ("estimated_performance", "rows", "estimated"))


def baseline(
    cfg: Config, windows: Sequence[Mapping[str, Any]], column: str, count: str
) -> dict | None:
    """The level the champion held in its first windows (or the configured floor)."""
    if cfg.retrain.decay_floor is not None and column == "performance":
        return {"value": cfg.retrain.decay_floor, "n": math.inf, "windows": [], "source": "floor"}
    need, mon = cfg.retrain.decay_baseline_rows, cfg.monitor
    used, total, acc = [], 0, 0.0
    for w in windows:
        if w[column] is None or w[count] < mon.min_window_rows:
            continue
        used.append(w)
        total += w[count]
        acc += w[column] * w[count]
        if total >= need:
            values = [u[column] for u in used]
            mean = acc / total
            sd = (
                math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                if len(values) > 1
                else None
            )
            return {
                "value": mean,
                "n": total,
                "windows": [u["id"] for u in used],
                "source": "first windows as champion",
                "window_sd": sd,
                "rows_per_window": total / len(used),
            }
    return None


def judge(
    cfg: Config, row: dict[str, Any], base: dict[str, Any], column: str, count: str, metric: str
) -> tuple[bool | None, dict[str, Any]]:
    """Whether one window decayed below ``base`` (None: it cannot be judged)."""
    value, n = row[column], row[count]
    if value is None or n < cfg.monitor.min_window_rows or row["id"] in base["windows"]:
        return None, {}
    lower = metric in LOWER_IS_BETTER
    drop = (value - base["value"]) if lower else (base["value"] - value)
    if metric in PROPORTIONS:
        b, v = base["value"], value
        var_b = 0.0 if math.isinf(base["n"]) else b * (1 - b) / base["n"]
        se = math.sqrt(max(var_b + v * (1 - v) / n, 0.0))
        how = "normal interval of a difference of proportions"
    elif base.get("window_sd") is not None:
        per = base["window_sd"] * math.sqrt(base["rows_per_window"] / n)
        se = per * math.sqrt(1 + n / base["n"])
        how = "standard error from the spread of the baseline windows"
    else:
        se, how = 0.0, "point estimate (one baseline window: no spread to estimate)"
    limit = cfg.monitor.max_performance_drop
    low = drop - Z * se
    return low > limit, {
        "value": value,
        "baseline": base["value"],
        "baseline_rows": base["n"],
        "baseline_source": base["source"],
        "drop": drop,
        "drop_low": low,
        "threshold": limit,
        "interval": how,
        "metric": metric,
        "n": n,
    }
