"""The data gate (``gates.data``): the training set checked before a model trained on it may be
registered.

Checks, each with its evidence:

- ``null_rate``: a column with more than ``max_null_rate`` missing values fails; more than
  ``warn_null_rate`` (10%: a model then learns mostly from what missingness means) warns;
- ``far_values``: sentinels such as 999999 or -1e9 and unit mix-ups: values more than
  ``range_factor`` times the 1%-99% span of the column's other values (its extreme values
  excluded, so a sentinel cannot widen its own fence) beyond that span; fails above
  ``max_out_of_range_share`` of the column, warns below. (The schema's own tolerant bounds,
  the 0.1% / 99.9% quantiles widened by a quarter of their span, hold 99.8% of the training
  values by construction, so they judge *new* data, below, not the set they came from.)
- ``constant``: a column with a single value (reported; fails only with ``fail_on_constant``);
- ``duplicates``: the share of rows repeated exactly (all columns, ids included); judged only
  when ``max_duplicate_share`` is set, since low-cardinality data repeats naturally;
- ``leakage``: a model input that alone predicts the label (single-feature AUC,
  :mod:`loopml.evaluate.gating.leakage`); the verdict names the column and its AUC (to 3 decimals,
  rounded down so that a value below a limit never prints as the limit). Three levels, chosen
  by measurement on real tables:

  * ``leakage_auc`` (0.98) blocks any column. The strongest *legitimate* single features
    measured: breast cancer "worst perimeter" 0.976 (continuous, 569 rows), wine flavanoids
    0.884, California MedInc 0.847, diabetes s5 0.785; real leaks: Titanic "boat" 0.960,
    a model's own score 0.908, a post-outcome field 0.887.
  * ``leakage_recode_auc`` (0.95) blocks a column with few distinct values (text, booleans,
    or at most ``recode_max_distinct`` numbers): such a column above 0.95 is a recoding of the
    target. A copy of the target with 2% of labels flipped scores 0.971-0.980, 5% flipped
    0.942; a continuous feature legitimately reaches 0.976 (above), so only the few-valued
    near-copy can be told apart by AUC, and it must block.
  * ``leakage_warn_auc`` (0.85) warns: named in ``loopml run``, the report and the card,
    without blocking (a strong honest feature, or a post-outcome field to check).
- ``schema``: with the champion's stored schema (``ctx.reference_schema``), the new training
  set is checked against it (:func:`loopml.stats.quality.check_quality`): errors fail.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from loopml.config import DataGateOptions
from loopml.evaluate.gating.gates import Gate, GateContext, GateResult
from loopml.evaluate.gating.leakage import single_feature_auc
from loopml.evaluate.gating.refit import model_features


def far_values(column: pd.Series, factor: float) -> dict[str, Any] | None:
    """Values beyond ``factor`` x the 1%-99% span of the other values (the column's minimum
    and maximum excluded), or ``None`` when there are none."""
    x = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    x = x[np.isfinite(x)]
    if len(x) < 20:
        return None
    lo_v, hi_v = x.min(), x.max()
    middle = x[(x > lo_v) & (x < hi_v)]
    # a code with a handful of values (Pclass 1/2/3) has no spread to judge against: its
    # middle is one value and everything else would look "far" (found on the Titanic table)
    if len(middle) < 10 or len(np.unique(middle)) < 3:
        return None
    lo, hi = np.quantile(middle, [0.01, 0.99])
    span = max(hi - lo, 1e-12 * max(abs(hi), 1.0))
    mask = (x > hi + factor * span) | (x < lo - factor * span)
    if not mask.any():
        return None
    return {
        "rows": int(mask.sum()),
        "lower": float(lo),
        "upper": float(hi),
        "examples": [float(v) for v in np.unique(x[mask])[:5]],
    }


def auc3(value: float) -> str:
    """An AUC to 3 decimals, rounded down: 0.9797 shows as 0.979, never as a limit of 0.98."""
    return f"{math.floor(value * 1000) / 1000:.3f}"


def pct(share: float) -> str:
    """A share as a percentage without rounding a limit away: 0.005 -> '0.5%', 0.5 -> '50%'."""
    return f"{share * 100:.3g}%"


class DataGate(Gate, DataGateOptions):  # type: ignore[misc]  # validate: see Gate
    """Schema and quality rules on the training set, and single-feature leakage."""

    name: ClassVar[str] = "data"

    def run(self, ctx: GateContext) -> GateResult:
        from loopml.stats.inferred_schema import Schema, infer_schema
        from loopml.stats.quality import check_quality

        if ctx.train is None:
            return self.result("insufficient_data", "No training frame was given to the data gate.")
        frame = ctx.train
        if ctx.features is not None:  # judge what the model learns from: features and label
            keep = [*ctx.features, *([ctx.target] if ctx.target in frame.columns else [])]
            frame = frame[[c for c in dict.fromkeys(keep) if c in frame.columns]]
        n = len(frame)
        if n < self.min_rows:
            return self.result(
                "insufficient_data",
                f"The training set has {n} rows (< {self.min_rows}); it was not judged.",
                n_rows=n,
            )
        feats = [c for c in model_features(ctx) if c in frame.columns]
        schema = infer_schema(frame)
        issues: list[dict[str, Any]] = []

        def issue(check: str, column: str | None, fail: bool, message: str, **ev: Any) -> None:
            issues.append(
                {
                    "check": check,
                    "column": column,
                    "severity": "fail" if fail else "warn",
                    "message": message,
                    **ev,
                }
            )

        columns: dict[str, dict[str, Any]] = {}
        nunique = frame.nunique(dropna=True)
        for name, col in schema.columns.items():
            distinct = int(nunique.get(name, 0))
            summary: dict[str, Any] = {
                "kind": col.kind,
                "dtype": col.dtype,
                "null_rate": col.null_rate,
                "distinct": distinct,
            }
            if col.kind == "numeric":
                summary.update(
                    lower=col.lower, upper=col.upper, out_of_range_share=col.out_of_range_rate
                )
            elif col.categories is not None:
                summary["categories"] = len(col.categories)
            columns[name] = summary
            if col.null_rate > min(self.max_null_rate, self.warn_null_rate):
                fail = col.null_rate > self.max_null_rate
                limit = self.max_null_rate if fail else self.warn_null_rate
                issue(
                    "null_rate",
                    name,
                    fail,
                    f"{name!r} is {col.null_rate:.1%} missing ("
                    + (f"limit {pct(limit)}" if fail else f"warning above {pct(limit)}")
                    + ")",
                    value=col.null_rate,
                    threshold=limit,
                )
            far = far_values(frame[name], self.range_factor) if col.kind == "numeric" else None
            if far is not None:
                share = far["rows"] / max(n, 1)
                summary["far_values"] = far
                issue(
                    "far_values",
                    name,
                    share > self.max_out_of_range_share,
                    f"{far['rows']} values of {name!r} ({share:.2%}) lie far outside the rest "
                    f"(e.g. {far['examples'][:3]}, the other values span "
                    f"[{far['lower']:.4g}, {far['upper']:.4g}]); sentinel values or mixed units?",
                    value=share,
                    threshold=self.max_out_of_range_share,
                )
            if distinct <= 1 and name != ctx.target:
                issue(
                    "constant",
                    name,
                    self.fail_on_constant,
                    f"{name!r} has a single value"
                    + (" (all missing)" if col.null_rate == 1 else ""),
                )
        duplicates = float(frame.duplicated().mean())
        if self.max_duplicate_share is not None and duplicates > self.max_duplicate_share:
            issue(
                "duplicates",
                None,
                True,
                f"{duplicates:.1%} of rows are exact duplicates "
                f"(limit {pct(self.max_duplicate_share)})",
                value=duplicates,
                threshold=self.max_duplicate_share,
            )
        leakage: list[dict[str, Any]] = []
        if ctx.target is not None and ctx.target in frame.columns and feats:
            leakage = single_feature_auc(
                frame[feats],
                frame[ctx.target].to_numpy(),
                task=ctx.task,
                n_folds=self.leakage_folds,
                seed=ctx.seed,
            )
            for row in leakage:
                few = (
                    row["kind"] == "categorical"
                    or int(nunique.get(row["column"], 0)) <= self.recode_max_distinct
                )
                auc, shown = row["auc"], auc3(row["auc"])
                if auc >= self.leakage_auc or (few and auc >= self.leakage_recode_auc):
                    limit = self.leakage_auc if auc >= self.leakage_auc else self.leakage_recode_auc
                    what = "" if limit == self.leakage_auc else " and has few distinct values"
                    issue(
                        "leakage",
                        row["column"],
                        True,
                        f"{row['column']!r} alone predicts {ctx.target!r} with AUC {shown} "
                        f"(>= {limit:g}{what}); is it known before the outcome? drop it or fix "
                        "the join",
                        value=auc,
                        threshold=limit,
                    )
                elif auc >= self.leakage_warn_auc:
                    issue(
                        "leakage",
                        row["column"],
                        False,
                        f"{row['column']!r} alone predicts {ctx.target!r} with AUC {shown} "
                        f"(warning at {self.leakage_warn_auc:g}, blocks at "
                        f"{self.leakage_recode_auc if few else self.leakage_auc:g}); check it is "
                        "known before the outcome",
                        value=auc,
                        threshold=self.leakage_warn_auc,
                    )
        if ctx.reference_schema:
            reference = Schema.from_dict(ctx.reference_schema)
            for f in check_quality(reference, frame):
                if f.check == "extra_column":
                    continue
                issue(
                    f"schema:{f.check}",
                    f.column,
                    f.severity == "error",
                    f"against the champion's training data: {f.message}",
                    evidence=f.evidence,
                )
        failed = [i for i in issues if i["severity"] == "fail"]
        warned = [i for i in issues if i["severity"] == "warn"]
        evidence = {
            "n_rows": n,
            "issues": issues,
            "columns": columns,
            "duplicate_share": duplicates,
            "leakage": leakage[:10],
            "leakage_auc": self.leakage_auc,
            "leakage_recode_auc": self.leakage_recode_auc,
            "leakage_warn_auc": self.leakage_warn_auc,
        }
        # leakage warnings first, in one sentence: they are the ones a reader must not miss
        strong = [i for i in warned if i["check"] == "leakage"]
        parts = [i["message"] for i in warned if i["check"] != "leakage"]
        if strong:
            named = ", ".join(f"{i['column']!r} {auc3(i['value'])}" for i in strong[:8])
            parts.insert(
                0,
                f"strong single features (AUC >= {self.leakage_warn_auc:g}; check each is known "
                f"before the outcome): {named}{' ...' if len(strong) > 8 else ''}",
            )
        more_w = f" (+{len(parts) - 5} more)" if len(parts) > 5 else ""
        note = f" Warnings: {'; '.join(parts[:5])}{more_w}." if parts else ""
        if failed:
            leaks = [i["column"] for i in failed if i["check"] == "leakage"]
            head = f"Possible target leakage in {', '.join(map(repr, leaks))}. " if leaks else ""
            more = f" (+{len(failed) - 5} more)" if len(failed) > 5 else ""
            return self.result(
                "fail",
                head + "; ".join(i["message"] for i in failed[:5]) + more + "." + note,
                **evidence,
            )
        top = leakage[0] if leakage else None
        strongest = (
            f", strongest single feature {top['column']!r} AUC {auc3(top['auc'])}" if top else ""
        )
        return self.result(
            "pass",
            f"The training set ({n:,} rows, {len(schema.columns)} columns) passes the schema and "
            f"quality rules{strongest}; {duplicates:.1%} duplicate rows.{note}",
            **evidence,
        )


def schema_of(frame: pd.DataFrame) -> dict[str, Any]:
    """The schema to store with a version (``extra["schema"]``), for the next run's data gate."""
    from loopml.stats.inferred_schema import infer_schema

    return infer_schema(frame).to_dict()
