"""Intersectional group fairness and the fairness gate.

For every observed combination of the sensitive attributes (e.g. SEX x RAC1P): counts, the
selection rate, TPR, FPR and precision with Wilson intervals; then per rate the worst-case ratio
``min_g / max_g`` and difference ``max_g - min_g`` over groups with enough data (Ghosh, Genuit
and Reagan, "Characterizing Intersectional Group Fairness with Worst-Case Comparisons", 2021 —
fairlearn's ``MetricFrame(...).ratio()`` over several sensitive columns). Criteria follow
fairlearn's names: demographic parity (selection rate), equal opportunity (TPR), equalized odds
(TPR and FPR: difference = the larger difference, ratio = the smaller ratio) and predictive
parity (precision). The default threshold is the four-fifths rule (UGESP, 29 CFR 1607.4(D)):
demographic-parity ratio >= 0.8.

Written by hand (docs/design/measurements.md, "Fairness"): fairlearn has no minimum group size —
a 3-row group with no positives silently gives ratio 0.0 — and is ~50x slower than a bincount.
Here a group too small for a rate is reported and judged "insufficient data", never 0.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from loopml.config import FairnessGateOptions
from loopml.config.gate_options import FAIRNESS_CRITERIA
from loopml.errors import ConfigError
from loopml.evaluate.gating.gates import Gate, GateContext, GateResult
from loopml.evaluate.measure.groups import group_rows
from loopml.evaluate.measure.intervals import wilson_interval

#: rate -> (numerator, denominator, human name, verb for the sentence)
RATES: dict[str, tuple[str, str, str]] = {
    "selection_rate": ("predicted_positives", "n", "selection-rate"),
    "tpr": ("tp", "positives", "true-positive-rate"),
    "fpr": ("fp", "negatives", "false-positive-rate"),
    "precision": ("tp", "predicted_positives", "precision"),
}
CRITERIA: dict[str, tuple[str, ...]] = {
    "demographic_parity": ("selection_rate",),
    "equal_opportunity": ("tpr",),
    "equalized_odds": ("tpr", "fpr"),
    "predictive_parity": ("precision",),
}
assert tuple(CRITERIA) == FAIRNESS_CRITERIA  # the names gates.fairness.thresholds may use


@dataclass
class FairnessReport:
    """Per-group rates and worst-case comparisons (see :func:`group_fairness`)."""

    sensitive: tuple[str, ...]
    groups: list[dict[str, Any]]
    rates: dict[str, dict[str, Any]]
    criteria: dict[str, dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sensitive": list(self.sensitive),
            "groups": self.groups,
            "rates": self.rates,
            "criteria": self.criteria,
            "settings": self.settings,
        }

    def group(self, name: str) -> dict[str, Any]:
        for g in self.groups:
            if g["group"] == name:
                return g
        raise KeyError(name)


def _summarise(groups: list[dict[str, Any]], rate: str) -> dict[str, Any]:
    eligible = [g for g in groups if g[rate]["sufficient"]]
    out: dict[str, Any] = {
        "eligible_groups": len(eligible),
        "ratio": None,
        "difference": None,
        "worst_group": None,
        "best_group": None,
    }
    if len(eligible) < 2:
        out["reason"] = (
            f"{len(eligible)} group(s) have enough data for the {rate}; "
            "a comparison needs at least 2"
        )
        return out
    values = np.array([g[rate]["value"] for g in eligible])
    lo, hi = int(np.argmin(values)), int(np.argmax(values))
    vmin, vmax = float(values[lo]), float(values[hi])
    out.update(
        ratio=(vmin / vmax) if vmax > 0 else 1.0,
        difference=vmax - vmin,
        worst_group=eligible[lo]["group"],
        best_group=eligible[hi]["group"],
    )
    # The interval of the ratio worst/best from the two groups' Wilson intervals [lb, ub]:
    # [lb_worst / ub_best, ub_worst / lb_best], and of the difference best - worst:
    # [lb_best - ub_worst, ub_best - lb_worst] (floored at 0). The upper bound of a ratio is
    # capped at 1.0 only after the comparison with the threshold could use it (a ratio's
    # threshold is at most 1), so a wide interval straddles instead of passing.
    (wl, wu), (bl, bu) = eligible[lo][rate]["ci"], eligible[hi][rate]["ci"]
    out["ratio_lower"] = float(wl / bu) if bu > 0 else 1.0
    out["ratio_upper"] = float(min(1.0, wu / bl)) if bl > 0 else 1.0
    out["difference_lower"] = float(max(0.0, bl - wu))
    out["difference_upper"] = float(max(0.0, bu - wl))
    return out


def group_fairness(
    frame: Any,
    y_true: Any,
    y_pred: Any,
    *,
    sensitive: Sequence[str],
    pos_label: Any = 1,
    min_group_size: int = 30,
    min_positives: int = 10,
    min_negatives: int = 10,
    min_predicted_positives: int = 10,
    confidence: float = 0.95,
) -> FairnessReport:
    """Selection rate, TPR, FPR and precision per intersection of ``sensitive`` columns,
    with Wilson intervals, and worst-case ratios/differences per rate and criterion.

    A group's rate counts only when the group has ``min_group_size`` rows and the rate's
    denominator reaches its minimum (positives for TPR, negatives for FPR, predicted positives
    for precision); other groups are listed with ``sufficient: False`` and the reason.
    """
    if not sensitive:
        raise ConfigError(
            "Fairness needs at least one sensitive column (data.sensitive).", field="sensitive"
        )
    groups = group_rows(frame, list(sensitive))
    y = np.asarray(y_true) == pos_label
    p = np.asarray(y_pred) == pos_label
    if len(y) != len(groups.codes) or len(p) != len(y):
        raise ConfigError(
            f"y_true ({len(y)}), y_pred ({len(p)}) and the sensitive columns "
            f"({len(groups.codes)}) must have the same number of rows."
        )
    k = groups.n_groups
    cells = np.bincount(groups.codes * 4 + y * 2 + p, minlength=4 * k).reshape(k, 4)
    counts = {
        "n": cells.sum(1),
        "positives": cells[:, 2] + cells[:, 3],
        "negatives": cells[:, 0] + cells[:, 1],
        "predicted_positives": cells[:, 1] + cells[:, 3],
        "tp": cells[:, 3],
        "fp": cells[:, 1],
    }
    minimum = {
        "n": min_group_size,
        "positives": min_positives,
        "negatives": min_negatives,
        "predicted_positives": min_predicted_positives,
    }
    table: list[dict[str, Any]] = [
        {
            "group": groups.name(j),
            "columns": dict(groups.labels[j]),
            **{c: int(v[j]) for c, v in counts.items()},
        }
        for j in range(k)
    ]
    for rate, (num, den, _) in RATES.items():
        lo, hi = wilson_interval(counts[num], counts[den], confidence)
        for j, row in enumerate(table):
            d = row[den]
            reasons = []
            if row["n"] < min_group_size:
                reasons.append(f"n={row['n']} < {min_group_size}")
            if den != "n" and d < max(minimum[den], 1):
                reasons.append(f"{den}={d} < {max(minimum[den], 1)}")
            row[rate] = {
                "value": (row[num] / d) if d else None,
                "ci": [float(lo[j]), float(hi[j])] if d else None,
                "sufficient": not reasons,
                **({"reason": "; ".join(reasons)} if reasons else {}),
            }
    rates = {rate: _summarise(table, rate) for rate in RATES}
    criteria: dict[str, dict[str, Any]] = {}
    for crit, parts in CRITERIA.items():
        summaries = [rates[r] for r in parts]
        if any(s["ratio"] is None for s in summaries):
            criteria[crit] = {
                "ratio": None,
                "difference": None,
                "rates": list(parts),
                "reason": "; ".join(s["reason"] for s in summaries if "reason" in s),
            }
            continue
        worst_ratio = min(parts, key=lambda r: rates[r]["ratio"])
        worst_diff = max(parts, key=lambda r: rates[r]["difference"])
        criteria[crit] = {
            "ratio": rates[worst_ratio]["ratio"],
            "difference": rates[worst_diff]["difference"],
            "ratio_rate": worst_ratio,
            "difference_rate": worst_diff,
            # equalized odds: ratio = the smaller of the rates' ratios, difference = the larger
            "ratio_lower": min(rates[r]["ratio_lower"] for r in parts),
            "ratio_upper": min(rates[r]["ratio_upper"] for r in parts),
            "difference_lower": max(rates[r]["difference_lower"] for r in parts),
            "difference_upper": max(rates[r]["difference_upper"] for r in parts),
            "rates": list(parts),
        }
    settings = {
        "pos_label": pos_label.item() if isinstance(pos_label, np.generic) else pos_label,
        "min_group_size": min_group_size,
        "min_positives": min_positives,
        "min_negatives": min_negatives,
        "min_predicted_positives": min_predicted_positives,
        "confidence": confidence,
    }
    return FairnessReport(
        sensitive=tuple(sensitive), groups=table, rates=rates, criteria=criteria, settings=settings
    )


def _describe(
    report: FairnessReport, rate: str, kind: str, value: float, limit: float, crit: str
) -> str:
    info = report.rates[rate]
    worst, best = report.group(info["worst_group"]), report.group(info["best_group"])
    human = RATES[rate][2]
    op = "<" if kind == "ratio" else ">"
    den = RATES[rate][1]
    extra = f", {den}={worst[den]}" if den != "n" else ""
    return (
        f"{human} {kind} {value:.2f} {op} {limit:.2f} ({crit}): group {worst['group']} "
        f"(n={worst['n']}{extra}) at {worst[rate]['value']:.2f} vs best group "
        f"{best['group']} at {best[rate]['value']:.2f}"
    )


class FairnessGate(Gate, FairnessGateOptions):
    """Worst-case intersectional fairness over ``ctx.sensitive``.

    ``thresholds`` maps ``<criterion>_ratio`` (a minimum) or ``<criterion>_difference`` (a
    maximum) to a number, criteria being demographic_parity, equal_opportunity, equalized_odds
    and predictive_parity; the default is the four-fifths rule.

    With ``use_intervals`` (the default) each ratio and difference is judged by its interval
    (simultaneous bounds from the groups' Wilson intervals, see :func:`_summarise`), three-way:
    *pass* when the whole interval clears the threshold, *fail* when it lies wholly on the wrong
    side, *insufficient evidence* when it straddles the threshold (a group of 51 with no false
    positives is not a ratio of 0.0; a ratio of 0.49 against 0.6 with a wide interval is not a
    pass). Insufficient evidence is warned and shown, and blocks only with
    ``block_insufficient: true``. ``use_intervals: false`` judges the point estimates.
    """

    name: ClassVar[str] = "fairness"

    def validate(self, task: str = "classification") -> None:  # type: ignore[override]
        if task == "regression":  # known before training: it could never judge anything
            raise ConfigError(
                "gates.fairness compares rates of a predicted class between groups, so it "
                "judges classifiers; this task is a regression. Remove gates.fairness and "
                "bound the error in every group with gates.metrics instead, e.g. "
                "{per_slice: true, thresholds: {rmse: '<= 50'}}.",
                field="gates.fairness",
            )

    def run(self, ctx: GateContext) -> GateResult:
        if not ctx.sensitive:
            return self.result(
                "insufficient_data",
                "No sensitive attributes are declared "
                "(data.sensitive), so fairness was not checked.",
            )
        pos = self.pos_label if self.pos_label is not None else ctx.pos_label
        if ctx.task != "classification" or pos is None:
            return self.result(
                "insufficient_data",
                "The fairness gate needs a classification "
                "task with a positive class (binary, or set gates.fairness."
                "pos_label for a multiclass model).",
            )
        report = group_fairness(
            ctx.frame,
            ctx.y_test,
            ctx.predictions,
            sensitive=ctx.sensitive,
            pos_label=pos,
            min_group_size=self.min_group_size,
            min_positives=self.min_positives,
            min_negatives=self.min_negatives,
            min_predicted_positives=self.min_predicted_positives,
            confidence=self.confidence,
        )
        failures: list[str] = []
        missing: list[str] = []
        unsure: list[str] = []
        passes: list[str] = []
        checks: dict[str, dict[str, Any]] = {}
        for key, limit in self.thresholds.items():
            crit, kind = key.rsplit("_", 1)
            info = report.criteria[crit]
            value = info[kind]
            if value is None:
                missing.append(f"{key}: {info.get('reason', 'not enough data')}")
                checks[key] = {"value": None, "threshold": limit, "verdict": "insufficient_data"}
                continue
            low, high = info[f"{kind}_lower"], info[f"{kind}_upper"]
            if not self.use_intervals:
                low = high = value
            # a ratio is a minimum, a difference a maximum
            good, bad = (
                (low >= limit, high < limit) if kind == "ratio" else (high <= limit, low > limit)
            )
            verdict = "fail" if bad else "pass" if good else "insufficient_data"
            rate = info[f"{kind}_rate"]
            checks[key] = {
                "value": value,
                "interval": [low, high] if self.use_intervals else None,
                "threshold": limit,
                "rate": rate,
                "worst_group": report.rates[rate]["worst_group"],
                "best_group": report.rates[rate]["best_group"],
                "verdict": verdict,
            }
            shown = f" (interval [{low:.2f}, {high:.2f}])" if self.use_intervals else ""
            if verdict == "fail":
                failures.append(_describe(report, rate, kind, value, limit, crit) + shown)
            elif verdict == "insufficient_data":
                unsure.append(
                    f"{key} {value:.2f}{shown} straddles the threshold {limit:g}: "
                    + _describe(report, rate, kind, value, limit, crit).split(": ", 1)[1]
                )
            else:
                passes.append(f"{key} {value:.2f}{shown}")
        small = [g["group"] for g in report.groups if g["n"] < self.min_group_size]
        evidence = {
            "checks": checks,
            "report": report.to_dict(),
            "small_groups": small,
            "use_intervals": self.use_intervals,
            "confidence": self.confidence,
            "thresholds": dict(self.thresholds),
            "block_insufficient": self.block_insufficient,
        }
        note = (
            (
                f" {len(small)} group(s) below {self.min_group_size} rows were not judged: "
                f"{', '.join(small[:5])}{' ...' if len(small) > 5 else ''}."
            )
            if small
            else ""
        )
        if failures:
            why = ""
            if self.explain:
                from loopml.evaluate.xai.attribution import fairness_explanation

                evidence["explanation"], why = fairness_explanation(ctx, checks)
            return self.result("fail", "; ".join(failures) + "." + why + note, **evidence)
        if missing or unsure:
            blocks = (
                " (this blocks: gates.fairness.block_insufficient)"
                if self.block_insufficient
                else " (warned, not blocking; gates.fairness.block_insufficient: true blocks)"
            )
            text = "; ".join(
                [
                    *(f"insufficient evidence: {u}" for u in unsure),
                    *(f"not enough data to judge {m}" for m in missing),
                ]
            )
            return self.result(
                "insufficient_data", text[0].upper() + text[1:] + blocks + "." + note, **evidence
            )
        return self.result(
            "pass", "Fairness within thresholds: " + ", ".join(passes) + "." + note, **evidence
        )
