"""The stability gate (``gates.stability``): is the model underspecified?

D'Amour et al., "Underspecification Presents Challenges for Credibility in Modern Machine
Learning" (JMLR 2022): models that differ only in their random seed can score the same overall
yet behave differently on stress slices and disagree on individual predictions. The gate
trains ``seeds - 1`` more models with seeds ``ctx.seed + 1 ...`` (the candidate is the first),
then measures on the held-out rows:

- the spread (max - min over models) of ``metric`` overall and on the ``stress_slices`` worst
  slices of the candidate (sensitive attributes, their intersection and segments, each with at
  least ``min_slice_size`` rows);
- the prediction disagreement: the mean share of rows on which two models' predicted labels
  differ (over all pairs), and the share on which any two differ (classification); for
  regression, the mean range of the predictions over the target's standard deviation.

It costs ``seeds - 1`` trainings, so its time is reported in the evidence; it is advisory
(``blocking: false``) by default. The trainings are independent: they run where the context's
``engine_map`` runs work (``loopml run --engine ray`` spreads them over Ray's workers) and
give the same models as here, seed for seed.
"""

from __future__ import annotations

import time
from itertools import combinations
from typing import Any, ClassVar

import numpy as np

from loopml.config import StabilityGateOptions
from loopml.errors import ConfigError
from loopml.evaluate.gating.gates import Gate, GateContext, GateResult
from loopml.evaluate.gating.refit import fit_function, model_features, training_data
from loopml.evaluate.measure.metrics import LOWER_IS_BETTER, metric_names
from loopml.evaluate.measure.slices import metrics_by_slice
from loopml.types import in_process


def disagreement(preds: np.ndarray) -> dict[str, float]:
    """``preds`` is models x rows of predicted labels: the mean pairwise share of rows that
    differ, the largest pairwise share, and the share of rows where any two models differ."""
    pairs = [float(np.mean(preds[i] != preds[j])) for i, j in combinations(range(len(preds)), 2)]
    return {
        "pairwise_mean": float(np.mean(pairs)) if pairs else 0.0,
        "pairwise_max": max(pairs) if pairs else 0.0,
        "any": float(np.mean((preds != preds[:1]).any(axis=0))),
    }


def _sibling(seed: int, shared: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray | None, float]:
    """One more model, trained with ``seed`` (on an engine's worker): its labels and
    probabilities on the held-out rows, and its training seconds."""
    fit, X, y, X_eval, with_proba, argmax_predicts = shared
    t0 = time.perf_counter()
    model = fit(X, y, seed)
    seconds = time.perf_counter() - t0
    proba = (
        np.asarray(model.predict_proba(X_eval), dtype=float)
        if with_proba and hasattr(model, "predict_proba")
        else None
    )
    if proba is not None and argmax_predicts:  # one pass over the rows, not two
        pred = np.asarray(model.classes_)[proba.argmax(axis=1)]
    else:
        pred = np.asarray(model.predict(X_eval))
    return pred, proba, seconds


class StabilityGate(Gate, StabilityGateOptions):
    """Spread of a metric over seeds, overall and on stress slices, and disagreement."""

    name: ClassVar[str] = "stability"

    def _metric(self, ctx: GateContext) -> str:
        if self.metric is not None:
            return self.metric
        if ctx.task == "regression":
            return "rmse"
        return "roc_auc" if ctx.pos_label is not None and ctx.proba is not None else "accuracy"

    def validate(self, task: str = "classification") -> None:  # type: ignore[override]
        if self.metric is not None and self.metric not in metric_names(task):
            raise ConfigError(
                f"Unknown metric {self.metric!r} in gates.stability.metric for a "
                f"{task} task. Valid metrics: {', '.join(metric_names(task))}.",
                field="gates.stability.metric",
            )

    def _slices(self, ctx: GateContext, pred: Any, proba: Any) -> list[dict[str, Any]]:
        return metrics_by_slice(
            ctx.frame,
            ctx.y_test,
            pred,
            proba,
            sensitive=ctx.sensitive,
            segments=ctx.segments,
            task=ctx.task,
            classes=ctx.classes,
            min_size=self.min_slice_size,
        )

    def run(self, ctx: GateContext) -> GateResult:
        metric = self._metric(ctx)
        fit = fit_function(ctx)
        if fit is None:
            return self.result(
                "insufficient_data",
                "Stability was not checked: the model cannot "
                "be cloned and no training function was given.",
            )
        X, y = training_data(ctx, "stability")
        X_eval = ctx.X_test[model_features(ctx)]
        seeds = [ctx.seed + i for i in range(self.seeds)]
        preds, tables, train_seconds = (
            [ctx.predictions],
            [self._slices(ctx, ctx.predictions, ctx.proba)],
            [],
        )
        # when the candidate's labels are the argmax of its probabilities, so are its siblings'
        argmax_predicts = (
            ctx.proba is not None
            and ctx.classes is not None
            and np.array_equal(
                np.asarray(ctx.classes)[np.asarray(ctx.proba).argmax(axis=1)], ctx.predictions
            )
        )
        with_proba = ctx.task == "classification" and ctx.proba is not None
        shared = (fit, X, y, X_eval, with_proba, argmax_predicts)
        # the siblings train where the engine runs work (ctx.engine_map), in the seeds' order
        for pred, proba, seconds in (ctx.engine_map or in_process)(
            _sibling, seeds[1:], shared=shared
        ):
            train_seconds.append(seconds)
            preds.append(pred)
            tables.append(self._slices(ctx, pred, proba))
        lower = metric in LOWER_IS_BETTER
        values = {row["slice"]: [t[i][metric] for t in tables] for i, row in enumerate(tables[0])}
        overall = values["overall"]
        if any(v is None for v in overall):
            return self.result(
                "insufficient_data", f"{metric} is undefined on the held-out rows.", metric=metric
            )
        spread = float(max(overall) - min(overall))
        eligible = [
            r
            for r in tables[0]
            if r["kind"] != "overall"
            and not r["insufficient"]
            and all(v is not None for v in values[r["slice"]])
        ]
        eligible.sort(key=lambda r: -r[metric] if lower else r[metric])
        stress = [
            {
                "slice": r["slice"],
                "n": r["n"],
                "values": values[r["slice"]],
                "spread": float(max(values[r["slice"]]) - min(values[r["slice"]])),
            }
            for r in eligible[: self.stress_slices]
        ]
        stacked = np.vstack(preds)
        if ctx.task == "classification":
            agree = disagreement(stacked)
            dis_value, dis_name = agree["pairwise_mean"], "prediction disagreement"
        else:
            scale = float(np.std(ctx.y_test.astype(float))) or 1.0
            rng = np.ptp(stacked.astype(float), axis=0) / scale
            agree = {"mean_range_over_std": float(rng.mean())}
            dis_value, dis_name = agree["mean_range_over_std"], "prediction range / std(y)"
        evidence = {
            "metric": metric,
            "seeds": seeds,
            "overall": overall,
            "spread": spread,
            "stress_slices": stress,
            "disagreement": agree,
            "train_seconds": train_seconds,
            "trainings": len(train_seconds),
            "thresholds": {
                "max_spread": self.max_spread,
                "max_slice_spread": self.max_slice_spread,
                "max_disagreement": self.max_disagreement,
            },
        }
        problems = []
        if spread > self.max_spread:
            problems.append(
                f"{metric} ranges over {spread:.4f} across {self.seeds} seeds "
                f"({min(overall):.4f}-{max(overall):.4f}; limit {self.max_spread:g})"
            )
        for s in stress:
            if s["spread"] > self.max_slice_spread:
                problems.append(
                    f"on slice {s['slice']} (n={s['n']}) {metric} ranges over "
                    f"{s['spread']:.4f} (limit {self.max_slice_spread:g})"
                )
        if dis_value > self.max_disagreement:
            problems.append(
                f"{dis_name} {dis_value:.1%} between seeds (limit {self.max_disagreement:.0%})"
            )
        if problems:
            return self.result(
                "fail",
                "The model is unstable across seeds (underspecified): "
                + "; ".join(problems[:5])
                + ".",
                **evidence,
            )
        worst = max((s["spread"] for s in stress), default=0.0)
        return self.result(
            "pass",
            f"Stable across {self.seeds} seeds: {metric} spread {spread:.4f} overall, "
            f"{worst:.4f} at most on {len(stress)} stress slice(s); {dis_name} {dis_value:.1%}.",
            **evidence,
        )
