"""The data gate (``gates.data``): the training set checked before a model trained on it may be
registered.

Checks, each with its evidence:

- ``null_rate``: a column with more than ``max_null_rate`` missing values;
- ``far_values``: sentinels such as 999999 or -1e9 and unit mix-ups: values more than
  ``range_factor`` times the 1%-99% span of the column's other values (its extreme values
  excluded, so a sentinel cannot widen its own fence) beyond that span; fails above
  ``max_out_of_range_share`` of the column, warns below. (The schema's own tolerant bounds,
  the 0.1% / 99.9% quantiles widened by a quarter of their span, hold 99.8% of the training
  values by construction, so they judge *new* data, below, not the set they came from.)
- ``constant``: a column with a single value (reported; fails only with ``fail_on_constant``);
- ``duplicates``: the share of rows repeated exactly (all columns, ids included); judged only
  when ``max_duplicate_share`` is set, since low-cardinality data repeats naturally;
- ``leakage``: a model input that alone predicts the label almost perfectly (single-feature
  AUC >= ``leakage_auc``, :mod:`loopml.evaluate.leakage`); the verdict names the column;
- ``schema``: with the champion's stored schema (``ctx.reference_schema``), the new training
  set is checked against it (:func:`loopml.stats.quality.check_quality`): errors fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import ConfigError
from loopml.evaluate.gates import Gate, GateContext, GateResult
from loopml.evaluate.leakage import single_feature_auc
from loopml.evaluate.retrain import model_features


def _rate(
    name: str, value: Any, *, low: float = 0.0, high: float = 1.0, optional: bool = False
) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigError(
            f"gates.data.{name} must be a number in [{low:g}, {high:g}]; got {value!r}.",
            field=f"gates.data.{name}",
        )


def far_values(column: pd.Series, factor: float) -> dict[str, Any] | None:
    """Values beyond ``factor`` x the 1%-99% span of the other values (the column's minimum
    and maximum excluded), or ``None`` when there are none."""
    x = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    x = x[np.isfinite(x)]
    if len(x) < 20:
        return None
    lo_v, hi_v = x.min(), x.max()
    middle = x[(x > lo_v) & (x < hi_v)]
    if len(middle) < 10:
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


@dataclass(kw_only=True)
class DataGate(Gate):
    """Schema and quality rules on the training set, and single-feature leakage."""

    name = "data"
    max_null_rate: float = 0.5
    max_out_of_range_share: float = 0.01
    range_factor: float = 10.0
    max_duplicate_share: float | None = None
    fail_on_constant: bool = False
    leakage_auc: float = 0.98
    leakage_folds: int = 5
    min_rows: int = 30
    blocking: bool = True

    def validate(self, task: str = "classification") -> None:
        _rate("max_null_rate", self.max_null_rate)
        _rate("max_out_of_range_share", self.max_out_of_range_share)
        _rate("max_duplicate_share", self.max_duplicate_share, optional=True)
        _rate("leakage_auc", self.leakage_auc, low=0.5)
        _rate("range_factor", self.range_factor, high=1e12)
        if (
            isinstance(self.leakage_folds, bool)
            or not isinstance(self.leakage_folds, int)
            or self.leakage_folds < 2
        ):
            raise ConfigError(
                f"gates.data.leakage_folds must be a whole number >= 2; got {self.leakage_folds!r}.",
                field="gates.data.leakage_folds",
            )

    def run(self, ctx: GateContext) -> GateResult:
        from loopml.stats.quality import check_quality
        from loopml.stats.schema import Schema, infer_schema

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
            if col.null_rate > self.max_null_rate:
                issue(
                    "null_rate",
                    name,
                    True,
                    f"{name!r} is {col.null_rate:.1%} missing (limit {self.max_null_rate:.0%})",
                    value=col.null_rate,
                    threshold=self.max_null_rate,
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
                f"{duplicates:.1%} of rows are exact duplicates (limit {self.max_duplicate_share:.0%})",
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
                if row["auc"] >= self.leakage_auc:
                    issue(
                        "leakage",
                        row["column"],
                        True,
                        f"{row['column']!r} alone predicts {ctx.target!r} with AUC "
                        f"{row['auc']:.3f} (>= {self.leakage_auc}); is it known before the "
                        "outcome? drop it or fix the join",
                        value=row["auc"],
                        threshold=self.leakage_auc,
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
        }
        note = f" Warnings: {'; '.join(i['message'] for i in warned[:3])}." if warned else ""
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
            f", strongest single feature {top['column']!r} AUC {top['auc']:.3f}" if top else ""
        )
        return self.result(
            "pass",
            f"The training set ({n:,} rows, {len(schema.columns)} columns) passes the schema and "
            f"quality rules{strongest}; {duplicates:.1%} duplicate rows.{note}",
            **evidence,
        )


def schema_of(frame: pd.DataFrame) -> dict[str, Any]:
    """The schema to store with a version (``extra["schema"]``), for the next run's data gate."""
    from loopml.stats.schema import infer_schema

    return infer_schema(frame).to_dict()
