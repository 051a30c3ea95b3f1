"""Label lint (``gates.labels``): likely mislabelled rows, class imbalance and outliers in the
training set, with a quarantine list of row ids for human review. Rows are never dropped.

- Label issues: cleanlab's confident learning (``cleanlab.filter.find_label_issues``; Northcutt,
  Jiang and Chuang, "Confident Learning", JAIR 2021) on *out-of-fold* probabilities: the model
  is retrained ``n_folds`` times (the user's ``train_fn`` when given, else a clone of the
  candidate) on a random subsample of at most ``max_rows`` rows, so the cost is ``n_folds``
  small trainings. Recall ~0.87, precision 0.46-0.86 (docs/design/measurements.md, "Label
  quality"): a review aid, hence a quarantine list and an advisory gate (``blocking: false``)
  by default.
- Class imbalance: the minority class's share of the training labels.
- Outliers: scikit-learn's ``IsolationForest`` on the numeric features (Liu, Ting and Zhou
  2008; precision@200 1.00 in 0.8 s against 0.64 for cleanlab's kNN OOD,
  docs/design/measurements.md, "Label quality"). A row is an outlier when its anomaly score
  ``s = -score_samples`` exceeds ``outlier_score`` (0.65; the paper reads s near 1 as
  anomalous and s <= 0.5 as normal). scikit-learn's own cut (``contamination="auto"``,
  s > 0.5) flags ~18% of plain Gaussian rows. Measured here at
  0.65: 1-2.4% of Gaussian rows (1 to 16 dimensions) and 80-94% of planted gross outliers
  (sigma 8); 2.5% of the employment rows (its one numeric feature, age, at 0 and 94).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from loopml.config import LabelsGateOptions
from loopml.errors import ConfigError, UsageError
from loopml.evaluate.gating.gates import Gate, GateContext, GateResult
from loopml.evaluate.gating.refit import aligned_proba, fit_function, training_data
from loopml.types import Mapper, in_process


def plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _fold(fold: tuple[int, np.ndarray, np.ndarray], shared: tuple[Any, ...]) -> np.ndarray:
    """One fold (on an engine's worker): trained without rows ``te``, their probabilities."""
    k, tr, te = fold
    fit, X, y, classes, seed = shared
    model = fit(X.iloc[tr], y[tr], seed + k)
    return aligned_proba(model, X.iloc[te], classes)


def oof_probabilities(
    fit: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    classes: np.ndarray,
    n_folds: int,
    seed: int,
    engine_map: Mapper | None = None,
) -> np.ndarray:
    """Out-of-fold ``predict_proba`` (one column per class): each row scored by a model trained
    without it, as ``sklearn.model_selection.cross_val_predict(method="predict_proba")``. The
    folds train where ``engine_map`` runs work (default: here, one after another)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    counts = np.unique(y, return_counts=True)[1]
    splitter = (StratifiedKFold if counts.min() >= n_folds else KFold)(
        n_splits=n_folds, shuffle=True, random_state=seed
    )
    folds = [(k, tr, te) for k, (tr, te) in enumerate(splitter.split(X, y))]
    shared = (fit, X, y, classes, seed)
    proba = np.zeros((len(y), len(classes)))
    for (_, _, te), part in zip(
        folds, (engine_map or in_process)(_fold, folds, shared=shared), strict=True
    ):
        proba[te] = part
    return proba


def outlier_scores(
    X: pd.DataFrame, seed: int, threshold: float = 0.65
) -> tuple[np.ndarray, np.ndarray] | None:
    """IsolationForest ``(is_outlier, score)`` on the numeric columns, ``score`` being the
    anomaly score ``s`` in (0, 1] (higher = more anomalous) and outliers ``s > threshold``;
    ``None`` without numeric columns. Missing values get the column median."""
    from sklearn.ensemble import IsolationForest

    num = X.select_dtypes("number")
    if num.shape[1] == 0:
        return None
    values = num.to_numpy(dtype=float, na_value=np.nan)
    med = np.nanmedian(np.where(np.isfinite(values), values, np.nan), axis=0)
    values = np.where(np.isfinite(values), values, np.nan_to_num(med)[None, :])
    forest = IsolationForest(n_estimators=100, random_state=seed).fit(values)
    score = -forest.score_samples(values)
    return score > threshold, score


def _cleanlab_filter() -> Any:
    """cleanlab's ``find_label_issues``; cleanlab is an extra (``loopml[labels]``), imported only
    when the label gate checks label issues."""
    try:
        from cleanlab.filter import find_label_issues
    except ImportError as exc:
        raise UsageError(
            "The labels gate checks label issues with cleanlab, which is not installed. Run "
            "`pip install 'loopml[labels]'` (or `pip install cleanlab`), or remove gates.labels "
            f"from loopml.yaml. ({exc})",
            field="gates.labels",
        ) from exc
    return find_label_issues


class LabelGate(Gate, LabelsGateOptions):  # type: ignore[misc]  # validate: see Gate
    """Flagged fraction of likely label errors, minority share and outlier share."""

    name: ClassVar[str] = "labels"

    def _ids(self, ctx: GateContext) -> tuple[str | None, np.ndarray]:
        assert ctx.train is not None
        col = self.id_column or ("id" if "id" in ctx.train.columns else None)
        if col is not None and col not in ctx.train.columns:
            raise ConfigError(
                f"gates.labels.id_column {col!r} is not a column of the training "
                f"data; columns there: {list(ctx.train.columns)[:20]}.",
                field="gates.labels.id_column",
            )
        return col, (ctx.train[col].to_numpy() if col else ctx.train.index.to_numpy())

    def _too_few(self, y: np.ndarray, n_classes: int) -> bool:
        """True when a class is missing from, or rarer than ``n_folds`` in, the checked rows."""
        counts = np.unique(y, return_counts=True)[1]
        return len(counts) < n_classes or int(counts.min()) < self.n_folds

    def _label_issues(
        self, ctx: GateContext, X: pd.DataFrame, y: np.ndarray, ids: np.ndarray, fit: Any
    ) -> dict[str, Any]:
        find_label_issues = _cleanlab_filter()
        classes = np.unique(y)
        t0 = time.perf_counter()
        proba = oof_probabilities(fit, X, y, classes, self.n_folds, ctx.seed, ctx.engine_map)
        given = np.searchsorted(classes, y)
        ranked = np.asarray(
            find_label_issues(
                given,
                proba,
                filter_by=self.filter_by,
                return_indices_ranked_by="self_confidence",
                n_jobs=1,
            ),
            dtype=np.int64,
        )
        p_given = proba[np.arange(len(y)), given]
        suspects = [
            {
                "id": plain(ids[i]),
                "label": plain(classes[given[i]]),
                "p_label": float(p_given[i]),
                "predicted": plain(classes[int(proba[i].argmax())]),
                "p_predicted": float(proba[i].max()),
            }
            for i in ranked[: self.top_n]
        ]
        return {
            "n_checked": len(y),
            "n_flagged": len(ranked),
            "flagged_fraction": len(ranked) / len(y),
            "suspects": suspects,
            "ids": [plain(v) for v in ids[ranked[: self.max_quarantine]]],
            "seconds": time.perf_counter() - t0,
            "n_folds": self.n_folds,
            "filter_by": self.filter_by,
        }

    def run(self, ctx: GateContext) -> GateResult:
        X_all, y_all = training_data(ctx, "labels")
        id_col, ids_all = self._ids(ctx)
        n = len(y_all)
        if n < 50:
            return self.result(
                "insufficient_data",
                f"The training set has {n} rows (< 50); labels were not linted.",
                n_rows=n,
            )
        rng = np.random.default_rng(ctx.seed)
        sub = (
            np.sort(rng.choice(n, self.max_rows, replace=False))
            if n > self.max_rows
            else np.arange(n)
        )
        X, y, ids = X_all.iloc[sub], y_all[sub], ids_all[sub]
        problems: list[str] = []
        notes: list[str] = []
        evidence: dict[str, Any] = {"n_rows": n, "n_checked": len(sub), "id_column": id_col}
        if ctx.task == "classification":
            values, counts = np.unique(y_all, return_counts=True)
            shares = counts / n
            minority = int(np.argmin(shares))
            evidence["class_shares"] = {
                str(plain(v)): float(s) for v, s in zip(values, shares, strict=True)
            }
            evidence["minority_class"] = plain(values[minority])
            evidence["minority_share"] = float(shares[minority])
            if len(values) < 2:
                problems.append(f"only one class ({plain(values[0])!r}) in the labels")
            elif shares[minority] < self.min_class_share:
                problems.append(
                    f"class {plain(values[minority])!r} is {shares[minority]:.2%} of "
                    f"the labels (< {self.min_class_share:.0%})"
                )
            fit = fit_function(ctx)
            if fit is None:
                notes.append(
                    "label issues not checked: the model cannot be cloned and no "
                    "training function was given"
                )
            elif len(values) >= 2 and self._too_few(y, len(values)):
                notes.append(
                    f"label issues not checked: a class has fewer than {self.n_folds} "
                    f"rows in the {len(y):,} rows checked"
                )
            elif len(values) >= 2:
                issues = self._label_issues(ctx, X, y, ids, fit)
                evidence["label_issues"] = issues
                frac = issues["flagged_fraction"]
                line = f"{issues['n_flagged']:,} of {len(sub):,} rows ({frac:.1%}) look mislabelled"
                (problems if frac > self.max_flagged_fraction else notes).append(
                    line
                    + (
                        f" (> {self.max_flagged_fraction:.0%})"
                        if frac > self.max_flagged_fraction
                        else ""
                    )
                )
        else:
            notes.append("label issues are only checked for classification")
        if self.outliers:
            t0 = time.perf_counter()
            out = outlier_scores(X, ctx.seed, self.outlier_score)
            if out is not None:
                flag, score = out
                order = np.argsort(-score, kind="stable")[: int(flag.sum())]
                frac = float(flag.mean())
                evidence["outliers"] = {
                    "n_flagged": int(flag.sum()),
                    "fraction": frac,
                    "ids": [plain(v) for v in ids[order[: self.max_quarantine]]],
                    "threshold": self.outlier_score,
                    "top": [
                        {"id": plain(ids[i]), "score": float(score[i])} for i in order[: self.top_n]
                    ],
                    "seconds": time.perf_counter() - t0,
                }
                line = f"{frac:.1%} of rows are outliers (IsolationForest)"
                (problems if frac > self.max_outlier_fraction else notes).append(
                    line
                    + (
                        f" (> {self.max_outlier_fraction:.0%})"
                        if frac > self.max_outlier_fraction
                        else ""
                    )
                )
        evidence["quarantine"] = sorted(
            {
                *evidence.get("label_issues", {}).get("ids", []),
                *evidence.get("outliers", {}).get("ids", []),
            },
            key=str,
        )[: self.max_quarantine]
        scope = f" (a random {len(sub):,} of {n:,} rows)" if len(sub) < n else ""
        review = f" {len(evidence['quarantine']):,} row ids are listed for review{scope}."
        if problems:
            return self.result(
                "fail",
                "Label lint: "
                + "; ".join(problems)
                + "."
                + (" Also: " + "; ".join(notes) + "." if notes else "")
                + review,
                **evidence,
            )
        if (
            "label_issues" not in evidence
            and "outliers" not in evidence
            and "minority_share" not in evidence
        ):
            return self.result(
                "insufficient_data",
                "Label lint could not run: " + "; ".join(notes) + ".",
                **evidence,
            )
        return self.result(
            "pass",
            "Label lint within limits: " + "; ".join(notes or ["ok"]) + "." + review,
            **evidence,
        )


def quarantine_rows(gate_result: dict[str, Any]) -> list[dict[str, Any]]:
    """The quarantine report of a stored ``labels`` verdict as rows ``{id, reason, ...}`` for
    a CSV a person reviews (the suspects with their scores first)."""
    ev = gate_result.get("evidence") or {}
    rows: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for s in (ev.get("label_issues") or {}).get("suspects", []):
        rows.append(
            {
                "id": s["id"],
                "reason": "label",
                "label": s["label"],
                "p_label": s["p_label"],
                "predicted": s["predicted"],
            }
        )
        seen.add(("label", s["id"]))
    for i in (ev.get("label_issues") or {}).get("ids", []):
        if ("label", i) not in seen:
            rows.append({"id": i, "reason": "label"})
    for i in (ev.get("outliers") or {}).get("ids", []):
        rows.append({"id": i, "reason": "outlier"})
    return rows
