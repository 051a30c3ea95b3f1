"""Metric gates: absolute thresholds, and "not worse than the champion by more than delta".

Threshold syntax (one form only): ``{"accuracy": ">= 0.7", "log_loss": "<= 0.45"}``, an
operator (``>=``, ``>``, ``<=``, ``<``) and a number.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from loopml.config import ChampionGateOptions, MetricsGateOptions
from loopml.config.gate_options import THRESHOLD_RULE
from loopml.errors import ConfigError
from loopml.evaluate.gating.gates import Gate, GateContext, GateResult
from loopml.evaluate.measure.bootstrap import comparable_metrics
from loopml.evaluate.measure.compare import compare_models
from loopml.evaluate.measure.metrics import classification_metrics, metric_names, regression_metrics
from loopml.evaluate.measure.slices import metrics_by_slice

#: metrics computed from predict_proba, undefined for a model without it
PROBA_METRICS = frozenset({"roc_auc", "log_loss"})
_OPS = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less}


def parse_rule(rule: str) -> tuple[str, float]:
    """``">= 0.7"`` -> ``(">=", 0.7)`` (the options model has checked its form)."""
    m = THRESHOLD_RULE.match(rule)
    assert m is not None, rule
    return m.group(1), float(m.group(2))


def _metrics(ctx: GateContext, X: pd.DataFrame | None = None, y: Any = None) -> dict[str, Any]:
    if ctx.task == "regression":
        return regression_metrics(ctx.y_test, ctx.predictions)
    return classification_metrics(ctx.y_test, ctx.predictions, ctx.proba, classes=ctx.classes)


class MetricGate(Gate, MetricsGateOptions):
    """Absolute metric thresholds on the held-out data, overall and (with ``per_slice``) on
    every sensitive/segment slice with at least ``min_slice_size`` rows."""

    name: ClassVar[str] = "metrics"

    def _rules(self, task: str) -> dict[str, tuple[str, float]]:
        valid = metric_names(task)
        for metric in self.thresholds:
            if metric not in valid:
                raise ConfigError(
                    f"Unknown metric {metric!r} in gates.metrics for a {task} task."
                    f" Valid metrics: {', '.join(valid)}.",
                    field=f"gates.metrics.{metric}",
                )
        return {metric: parse_rule(rule) for metric, rule in self.thresholds.items()}

    def validate(self, task: str = "classification") -> None:  # type: ignore[override]
        self._rules(task)

    def run(self, ctx: GateContext) -> GateResult:
        rules = self._rules(ctx.task)
        if not rules:
            return self.result("pass", "No metric thresholds are configured.")
        n = len(ctx.y_test)
        if n < self.min_rows:
            return self.result(
                "insufficient_data",
                f"Only {n} held-out rows (< gates.metrics.min_rows = {self.min_rows}); metric "
                "thresholds were not judged (this does not block). Hold out more rows "
                "(data.test_size) or lower gates.metrics.min_rows.",
                n=n,
            )
        if ctx.task == "classification" and ctx.proba is None:
            scored = [m for m in rules if m in PROBA_METRICS]
            if scored:  # never computable for this model: not a matter of too little data
                return self.result(
                    "fail",
                    f"{' and '.join(scored)} {'needs' if len(scored) == 1 else 'need'} predicted probabilities, but the model "
                    f"({type(ctx.model).__name__}) has no predict_proba. Return a classifier "
                    "with predict_proba (e.g. wrap it in CalibratedClassifierCV) or remove "
                    f"{', '.join(scored)} from gates.metrics.",
                    unavailable=scored,
                )
        overall = _metrics(ctx)
        rows = [{"slice": "overall", "n": n, **overall}]
        if self.per_slice and (ctx.sensitive or ctx.segments):
            rows += [
                r
                for r in metrics_by_slice(
                    ctx.frame,
                    ctx.y_test,
                    ctx.predictions,
                    ctx.proba,
                    sensitive=ctx.sensitive,
                    segments=ctx.segments,
                    task=ctx.task,
                    classes=ctx.classes,
                    min_size=self.min_slice_size,
                )
                if r["kind"] != "overall" and not r["insufficient"]
            ]
        checks, failures, undefined = [], [], []
        for row in rows:
            for metric, (op, limit) in rules.items():
                value = row.get(metric)
                if value is None:
                    undefined.append(f"{metric} on {row['slice']}")
                    checks.append(
                        {
                            "slice": row["slice"],
                            "metric": metric,
                            "value": None,
                            "rule": f"{op} {limit}",
                            "verdict": "insufficient_data",
                        }
                    )
                    continue
                ok = bool(_OPS[op](value, limit))
                checks.append(
                    {
                        "slice": row["slice"],
                        "metric": metric,
                        "value": value,
                        "rule": f"{op} {limit}",
                        "n": row["n"],
                        "verdict": "pass" if ok else "fail",
                    }
                )
                if not ok:
                    failures.append(
                        f"{metric} {value:.4f} is not {op} {limit:g} on "
                        f"{row['slice']} (n={row['n']})"
                    )
        evidence = {"checks": checks, "overall": overall}
        if failures:
            more = f" (+{len(failures) - 5} more)" if len(failures) > 5 else ""
            return self.result("fail", "; ".join(failures[:5]) + more + ".", **evidence)
        if undefined and all(c["slice"] == "overall" for c in checks if c["value"] is None):
            return self.result(
                "insufficient_data",
                "Undefined on this data: " + ", ".join(undefined) + ".",
                **evidence,
            )
        summary = ", ".join(f"{m} {overall[m]:.4f}" for m in rules if overall.get(m) is not None)
        return self.result(
            "pass", f"All metric thresholds hold ({summary}; {len(checks)} checks).", **evidence
        )


class ChampionGate(Gate, ChampionGateOptions):
    """The challenger must not be worse than the champion by more than ``delta`` on the same
    held-out rows (and on ``ctx.recent`` when given): the lower end of the paired interval of
    the improvement must be >= -delta (TFX's blessing). The interval is DeLong's for ROC AUC
    and a paired bootstrap for every other metric (see :mod:`loopml.evaluate.measure.compare`). ``metric=None`` picks roc_auc (binary),
    accuracy (multiclass) or rmse (regression)."""

    name: ClassVar[str] = "champion"

    def _metric(self, task: str, n_classes: int | None, scored: bool = True) -> str:
        """The configured metric, or the task's default (``scored``: both models have
        ``predict_proba``, without which ROC AUC cannot be computed)."""
        binary_default = "roc_auc" if scored else "accuracy"
        default = (
            "rmse" if task == "regression" else binary_default if n_classes == 2 else "accuracy"
        )
        metric = self.metric or default
        valid = comparable_metrics(task, n_classes)
        if metric not in valid:
            raise ConfigError(
                f"gates.champion.metric {metric!r} cannot be compared for this "
                f"task; valid: {', '.join(valid)}.",
                field="gates.champion.metric",
            )
        return metric

    def validate(self, task: str = "classification") -> None:  # type: ignore[override]
        every = set(comparable_metrics(task, 2)) | set(comparable_metrics(task, 3))
        if self.metric is not None and self.metric not in every:
            raise ConfigError(
                f"gates.champion.metric {self.metric!r} is not supported for a {task} task; "
                f"valid: {', '.join(sorted(every))}.",
                field="gates.champion.metric",
            )

    def _compare(
        self,
        ctx: GateContext,
        metric: str,
        X: pd.DataFrame,
        y: Any,
        chal_pred: Any = None,
        chal_proba: Any = None,
    ) -> dict[str, Any]:
        needs_proba = metric in ("roc_auc", "log_loss")

        def outputs(model: Any, pred: Any, proba: Any) -> tuple[Any, Any]:
            if pred is None:  # one pass over the rows: only what the metric needs
                if needs_proba:
                    proba = model.predict_proba(X)
                else:
                    pred = model.predict(X)
            return pred, proba

        return compare_models(
            metric,
            y,
            outputs(ctx.model, chal_pred, chal_proba),
            outputs(ctx.champion, None, None),
            task=ctx.task,
            classes=ctx.classes,
            n_boot=self.n_boot,
            confidence=self.confidence,
            seed=self.seed,
        )

    def run(self, ctx: GateContext) -> GateResult:
        n_classes = None if ctx.classes is None else len(ctx.classes)
        unscored = [
            f"the {who} ({type(m).__name__})"
            for who, m in (("challenger", ctx.model), ("champion", ctx.champion))
            if m is not None and not hasattr(m, "predict_proba")
        ]
        metric = self._metric(ctx.task, n_classes, scored=not unscored)
        if ctx.champion is None and ctx.champion_error:
            # fail closed: a champion that cannot be read is not "no champion"
            return self.result(
                "fail",
                f"Not compared with the champion, because {ctx.champion_error}. A challenger "
                "that cannot be compared is not registered as a candidate. Fix or restore the "
                "champion's artifact (or its trusted types / project modules), or retire it "
                "with 'loopml retire VERSION' if it should no longer be the bar.",
                champion=None,
                metric=metric,
                error=ctx.champion_error,
            )
        if ctx.champion is None:
            return self.result(
                "insufficient_data",
                "No champion yet, so there is nothing to compare against (this does not block).",
                champion=None,
            )
        if metric in PROBA_METRICS and unscored:
            return self.result(
                "fail",
                f"gates.champion.metric {metric} needs predicted probabilities, but "
                f"{' and '.join(unscored)} {'has' if len(unscored) == 1 else 'have'} no predict_proba. Set gates.champion.metric to "
                "accuracy (or another metric of the predictions), or return a classifier with "
                "predict_proba.",
                metric=metric,
            )
        datasets = [("held-out", ctx.X_test, ctx.y_test, ctx.predictions, ctx.proba)]
        if ctx.recent is not None and ctx.target in getattr(ctx.recent, "columns", ()):
            recent = ctx.recent
            datasets.append(
                (
                    "recent",
                    recent[list(ctx.X_test.columns)],
                    np.asarray(recent[ctx.target]),
                    None,
                    None,
                )
            )
        comparisons, failures, small = {}, [], []
        for label, X, y, pred, proba in datasets:
            if len(y) < self.min_rows:
                small.append(
                    f"{label} data has {len(y)} rows (< gates.champion.min_rows = {self.min_rows})"
                )
                continue
            res = self._compare(ctx, metric, X, y, pred, proba)
            comparisons[label] = res
            if res["ci_low"] is None:
                small.append(f"{label} data: {res.get('reason', 'metric undefined')}")
                continue
            if not res["ci_low"] >= -self.delta:
                failures.append(
                    f"on {label} data (n={res['n']}) {metric} {res['challenger']:.4f} vs champion"
                    f" {res['champion']:.4f}: the {self.confidence:.0%} interval of the "
                    f"improvement [{res['ci_low']:+.4f}, {res['ci_high']:+.4f}] reaches below "
                    f"-{self.delta:g}"
                )
        evidence = {
            "metric": metric,
            "delta": self.delta,
            "comparisons": comparisons,
            "skipped": small,
        }
        if failures:
            return self.result(
                "fail",
                "The challenger may be worse than the champion: " + "; ".join(failures) + ".",
                **evidence,
            )
        if not comparisons:
            hint = (
                " Hold out more rows (data.test_size) or lower gates.champion.min_rows."
                if any("min_rows" in s for s in small)
                else ""
            )
            return self.result(
                "insufficient_data",
                "; ".join(small) + ", so the champion comparison was not judged (this does not "
                "block)." + hint,
                **evidence,
            )
        parts = [
            f"{label}: {metric} {r['challenger']:.4f} vs {r['champion']:.4f}, improvement "
            f"interval [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"
            for label, r in comparisons.items()
        ]
        return self.result(
            "pass",
            f"Not worse than the champion by more than {self.delta:g} ({'; '.join(parts)}).",
            **evidence,
        )
