"""Minimum-functionality tests (CheckList's MFT): golden cases from a CSV or YAML file, each with
an expected label or a score range, checked against the candidate model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from loopml.errors import ConfigError
from loopml.evaluate.checklist.checks import BehaviourTest, Sample, check_result
from loopml.evaluate.gating.gates import GateContext

RESERVED = ("case", "expected", "score_min", "score_max", "score")


def load_cases(source: str | Path | pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Golden cases from a CSV or YAML file (a list of rows, or ``{cases: [...]}``), a
    DataFrame or a list of dicts. YAML rows may give ``score: [lo, hi]``."""
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ConfigError(
                f"The MFT cases file {str(path)!r} does not exist; give a CSV or "
                "YAML file of rows with an 'expected' or 'score_min'/'score_max' "
                "column.",
                field="cases",
            )
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(path.read_text())
            source = data.get("cases", data) if isinstance(data, dict) else data
        elif path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        else:
            raise ConfigError(
                f"MFT cases must be a .csv or .yaml file; got {path.name!r}.", field="cases"
            )
    rows = [dict(r) for r in source]
    for r in rows:
        if "score" in r:
            lo, hi = r.pop("score")
            r["score_min"], r["score_max"] = lo, hi
    return pd.DataFrame(rows)


def _align(cases: pd.DataFrame, X: pd.DataFrame) -> pd.DataFrame:
    """Give the case features the dtypes of the model's input ``X``."""
    missing = [c for c in X.columns if c not in cases.columns]
    if missing:
        raise ConfigError(
            f"MFT cases lack the model input column(s) {missing}; every case "
            f"needs all of {list(X.columns)}.",
            field="cases",
        )
    out = pd.DataFrame(index=cases.index)
    for col in X.columns:
        dtype = X[col].dtype
        values = cases[col]
        if isinstance(dtype, pd.CategoricalDtype):
            cats = dtype.categories
            as_cat = (
                values.astype(str)
                if cats.dtype == object or pd.api.types.is_string_dtype(cats)
                else values.astype(cats.dtype)
            )
            unknown = sorted(set(as_cat.dropna()) - set(cats))
            if unknown:
                raise ConfigError(
                    f"MFT cases hold {col}={unknown}, which the model never saw. "
                    f"Known values: {list(cats)[:30]}.",
                    field=f"cases.{col}",
                )
            out[col] = pd.Categorical(as_cat, categories=cats, ordered=dtype.ordered)
        else:
            out[col] = values.astype(dtype)
    return out


@dataclass(kw_only=True)
class MFT(BehaviourTest):
    """Golden cases: each row must get its ``expected`` label or a score in
    ``[score_min, score_max]``."""

    kind: ClassVar[str] = "MFT"
    cases: Any = None

    def run(
        self, ctx: GateContext, sample: Sample, rng: np.random.Generator, cap: int
    ) -> dict[str, Any]:
        cases = load_cases(self.cases)
        if not ({"expected", "score_min", "score_max"} & set(cases.columns)):
            raise ConfigError(
                "MFT cases need an 'expected' column or 'score_min'/'score_max' "
                "(YAML: score: [lo, hi]).",
                field="cases",
            )
        feats = _align(cases, ctx.X_test)
        pred = np.asarray(ctx.model.predict(feats))
        score = ctx.scores(ctx.model, feats)
        failed = np.zeros(len(cases), dtype=bool)
        if "expected" in cases:
            exp = cases["expected"]
            has = exp.notna().to_numpy()
            numeric = pd.to_numeric(exp, errors="coerce")
            if pred.dtype.kind in "biuf" and numeric[has].notna().all():
                differs = numeric.to_numpy(dtype=float) != pred.astype(float)
            else:
                differs = exp.astype(str).to_numpy() != pred.astype(str)
            failed |= has & differs
        for col, cmp in (("score_min", np.less), ("score_max", np.greater)):
            if col in cases:
                bound = pd.to_numeric(cases[col], errors="coerce").to_numpy(dtype=float)
                failed |= np.isfinite(bound) & cmp(score, bound)
        labels = cases["case"].tolist() if "case" in cases else list(range(len(cases)))
        failures = [
            {
                "case": labels[i],
                "prediction": pred[i].item() if isinstance(pred[i], np.generic) else pred[i],
                "score": float(score[i]),
                **{
                    k: cases[k].iloc[i]
                    for k in ("expected", "score_min", "score_max")
                    if k in cases
                },
            }
            for i in np.flatnonzero(failed)
        ]
        return check_result(self, len(cases), failed, failures, cap)
