"""Whether one monitor window breaches an alert rule: the rules in force (``monitor.alerts``,
or the defaults) and ``judge``, a pure function of the window's summary numbers and the
champion's baseline. ``monitor.alerts`` turns these verdicts into alerts (persistence,
dedupe, cooldown, delivery); the controller's decay and drift triggers judge windows with
the same function, so a trigger and an alert never disagree about a window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopml.config import AlertRule, Config
from loopml.evaluate.measure.metrics import LOWER_IS_BETTER

DEFAULT_LATENCY_MS = 1000.0
MULTIVARIATE_AUC = 0.55  # the domain classifier's AUC that counts as drift (Evidently's)
DEFAULT_ERROR_RATE = 0.01


def default_rules(cfg: Config) -> list[AlertRule]:
    """Rules used when ``monitor.alerts`` is empty."""
    return [
        AlertRule(name="performance-drop", on="performance", k=2, m=3, severity="critical"),
        AlertRule(name="estimated-performance-drop", on="estimated_performance", k=2, m=3),
        AlertRule(name="dataset-drift", on="drift", k=2, m=3),
        AlertRule(name="data-quality", on="quality", k=1, m=1, severity="critical"),
        AlertRule(name="refused-traffic", on="refused", k=1, m=1, severity="critical"),
    ]


def rules_of(cfg: Config) -> list[AlertRule]:
    return list(cfg.monitor.alerts) or default_rules(cfg)


def judge(
    rule: AlertRule, row: Mapping[str, Any], cfg: Config, baseline: dict[str, Any]
) -> tuple[bool | None, dict[str, Any]]:
    """Whether one window breaches the rule (None: cannot be judged), with the numbers."""
    mon = cfg.monitor
    on = rule.on
    if on == "refused":  # judged on the endpoint's refused windows (monitor.refused)
        return None, {}
    if on == "drift":
        value, thr = (
            row["drift_score"],
            rule.threshold if rule.threshold is not None else mon.drift_share,
        )
        auc = row.get("multivariate_auc")
        joint = auc is not None and auc >= MULTIVARIATE_AUC
        ev = {"value": value, "threshold": thr, "op": ">="}
        if auc is not None:  # a change in how columns move together, which no column shows
            ev.update(multivariate_auc=auc, multivariate_threshold=MULTIVARIATE_AUC)
        if value is None:
            return (True if joint else None), ev
        return (value >= thr or joint), ev
    if on == "quality":
        thr = rule.threshold if rule.threshold is not None else 1
        return row["quality_errors"] >= thr, {
            "value": row["quality_errors"],
            "threshold": thr,
            "op": ">=",
        }
    if on in ("performance", "estimated_performance"):
        value = row[on]
        n = row["labels"] if on == "performance" else row["rows"]
        metric = row["metric"] or mon.performance_metric or "accuracy"
        base = baseline.get(metric)
        if value is None or base is None or n < mon.min_window_rows:
            return None, {}
        drop = rule.threshold if rule.threshold is not None else mon.max_performance_drop
        if metric in LOWER_IS_BETTER:  # a loss or an error decays by rising
            return value > base + drop, {
                "value": value,
                "threshold": base + drop,
                "baseline": base,
                "metric": metric,
                "op": ">",
                "n": n,
            }
        return value < base - drop, {
            "value": value,
            "threshold": base - drop,
            "baseline": base,
            "metric": metric,
            "op": "<",
            "n": n,
        }
    if on == "fairness":
        value, thr = (
            row["fairness_ratio"],
            rule.threshold if rule.threshold is not None else mon.fairness_threshold,
        )
        return (None if value is None else value < thr), {
            "value": value,
            "threshold": thr,
            "op": "<",
        }
    if on == "latency":
        value, thr = (
            row["latency_p99"],
            rule.threshold if rule.threshold is not None else DEFAULT_LATENCY_MS,
        )
        return (None if value is None else value > thr), {
            "value": value,
            "threshold": thr,
            "op": ">",
        }
    if on == "errors":
        if not row["rows"]:
            return None, {}
        value = row["errors"] / row["rows"]
        thr = rule.threshold if rule.threshold is not None else DEFAULT_ERROR_RATE
        return value > thr, {"value": value, "threshold": thr, "op": ">"}
    raise AssertionError(on)
