"""Live performance of a window once labels arrive, per slice, and fairness over time.

Predictions are joined to labels by ``_request_id`` batch by batch (``pyarrow.compute.index_in``
against the window's labels); only the labelled rows' label, prediction, score and slice
columns are kept, as NumPy arrays. Metrics come from ``evaluate`` (scikit-learn underneath):
``metrics_by_slice`` for overall and per-slice numbers and ``group_fairness`` for selection
rate, TPR and FPR per intersectional group with a minimum group size. Selection rates over
*all* rows (labelled or not) are counted per group as batches pass, so fairness of decisions
is tracked even before any label arrives.

Labels and predictions are compared as canonical strings (a float label 1.0 and an integer
class 1 are the same class): the log stores numbers as float64 whatever the client sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.evaluate.gating.fairness import group_fairness
from loopml.evaluate.measure.metrics import metric_names, regression_metrics
from loopml.evaluate.measure.slices import metrics_by_slice
from loopml.logs.logtables import canonical


def monitor_metric(configured: str | None, task: str) -> tuple[str, str | None]:
    """The metric a window of a ``task`` model tracks, and a note when the configured one
    (``monitor.performance_metric``) is not computed for that task."""
    default = "r2" if task == "regression" else "accuracy"
    if configured is None or configured == default:
        return default, None
    if configured in metric_names(task):
        return configured, None
    return default, (
        f"monitor.performance_metric {configured!r} is not computed for a {task} model "
        f"(one of {', '.join(metric_names(task))}); this window tracks {default} instead"
    )


def _numbers(arr: pa.Array) -> pa.Array:
    """Regression labels as float64; text that is not a number (and NaN) becomes null."""
    if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type):
        out = pc.cast(arr, pa.float64())
    else:
        values = pd.to_numeric(
            pd.Series(pc.cast(arr, pa.string()).to_numpy(zero_copy_only=False)),
            errors="coerce",
        )
        out = pa.array(values.to_numpy(dtype=float), pa.float64())
    return pc.if_else(pc.is_finite(out), out, pa.scalar(None, pa.float64()))


def canonical_value(value: Any) -> str:
    return canonical(pa.array([value])).to_pylist()[0]


class Performance:
    """Running state of one (version, role) group of a window: selection counts per group of
    the sensitive attributes and the labelled rows."""

    def __init__(
        self, sensitive: Sequence[str], slices: Sequence[str], positive: str | None, task: str
    ) -> None:
        self.sensitive = list(sensitive)
        self.slices = list(dict.fromkeys([*sensitive, *slices]))
        self.positive = positive
        self.task = task
        self.selection: dict[tuple[Any, ...], list[int]] = {}
        self.parts: dict[str, list[np.ndarray]] = {"y": [], "pred": [], "score": []}
        self.slice_parts: dict[str, list[np.ndarray]] = {c: [] for c in self.slices}

    def predicted_positive(self, pred: pa.Array) -> np.ndarray | None:
        if self.positive is None:
            return None
        return pc.fill_null(pc.equal(canonical(pred), self.positive), False).to_numpy(
            zero_copy_only=False
        )

    def count_selection(self, batch: pa.RecordBatch, positive: np.ndarray | None) -> None:
        cols = [c for c in self.sensitive if c in batch.schema.names]
        if positive is None or not cols or len(cols) < len(self.sensitive):
            return
        t = pa.table(
            {
                **{c: canonical(batch.column(c)) for c in cols},
                "_pos": pa.array(positive.astype(np.int64)),
            }
        )
        agg = t.group_by(cols).aggregate([("_pos", "sum"), ("_pos", "count")])
        keys = zip(*(agg.column(c).to_pylist() for c in cols), strict=True)
        for key, s, n in zip(
            keys,
            agg.column("_pos_sum").to_pylist(),
            agg.column("_pos_count").to_pylist(),
            strict=True,
        ):
            cell = self.selection.setdefault(tuple(key), [0, 0])
            cell[0] += n
            cell[1] += s

    def add_labelled(self, batch: pa.RecordBatch, labels: pa.Array) -> int:
        """Keep the rows of ``batch`` that have a label (``labels`` aligned, null = none)."""
        if self.task == "regression":
            labels = _numbers(labels)  # a label that is not a number cannot be scored
        has = pc.is_valid(labels)
        if not pc.any(has).as_py():
            return 0
        rows = batch.filter(has)
        y = labels.filter(has)
        if self.task == "regression":
            self.parts["y"].append(pc.cast(y, pa.float64()).to_numpy(zero_copy_only=False))
            self.parts["pred"].append(
                pc.cast(rows.column("_prediction"), pa.float64()).to_numpy(zero_copy_only=False)
            )
        else:
            self.parts["y"].append(canonical(y).to_numpy(zero_copy_only=False))
            self.parts["pred"].append(
                canonical(rows.column("_prediction")).to_numpy(zero_copy_only=False)
            )
        score = (
            rows.column("_score")
            if "_score" in rows.schema.names
            else pa.nulls(rows.num_rows, pa.float64())
        )
        self.parts["score"].append(
            pc.fill_null(pc.cast(score, pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        )
        for c in self.slices:
            col = rows.column(c) if c in rows.schema.names else pa.nulls(rows.num_rows, pa.string())
            self.slice_parts[c].append(canonical(col).to_numpy(zero_copy_only=False))
        return rows.num_rows

    @property
    def n_labelled(self) -> int:
        return int(sum(len(a) for a in self.parts["y"]))

    def labels_array(self) -> np.ndarray:
        return np.concatenate(self.parts["y"]) if self.parts["y"] else np.array([])

    def metrics(self, classes: Sequence[Any] | None, min_size: int) -> dict[str, Any] | None:
        """Realised metrics overall and per slice of the labelled rows (None without labels)."""
        if not self.n_labelled:
            return None
        y = np.concatenate(self.parts["y"])
        pred = np.concatenate(self.parts["pred"])
        if self.task == "regression":
            return {"overall": regression_metrics(y, pred), "slices": []}
        score = np.concatenate(self.parts["score"])
        labels = [canonical_value(c) for c in classes] if classes else None
        proba = (
            score if labels is not None and len(labels) == 2 and np.isfinite(score).all() else None
        )
        frame = pd.DataFrame({c: np.concatenate(v) for c, v in self.slice_parts.items()})
        if labels is not None:  # a label outside the training classes: compare as given
            extra = sorted(
                (set(np.unique(y).tolist()) | set(np.unique(pred).tolist())) - set(labels)
            )
            if extra:
                labels, proba = [*labels, *extra], None
        rows = metrics_by_slice(
            frame,
            y,
            pred,
            proba,
            sensitive=[c for c in self.sensitive if c in frame],
            segments=[c for c in self.slices if c not in self.sensitive],
            classes=labels,
            min_size=min_size,
        )
        overall = rows[0]
        return {"overall": overall, "slices": rows[1:]}

    def fairness(self, *, min_group_size: int) -> dict[str, Any] | None:
        """Selection rate of every row per group, and TPR/FPR on labelled rows."""
        if not self.sensitive or self.positive is None:
            return None
        out: dict[str, Any] = {"sensitive": self.sensitive, "min_group_size": min_group_size}
        if self.selection:
            groups = []
            for key, (n, s) in sorted(self.selection.items(), key=lambda kv: str(kv[0])):
                groups.append(
                    {
                        "group": " & ".join(
                            f"{c}={v}" for c, v in zip(self.sensitive, key, strict=True)
                        ),
                        "n": n,
                        "selected": s,
                        "selection_rate": s / n if n else None,
                        "sufficient": n >= min_group_size,
                    }
                )
            ok = [g for g in groups if g["sufficient"]]
            ratio = None
            if len(ok) >= 2:
                rates = np.array([g["selection_rate"] for g in ok])
                ratio = float(rates.min() / rates.max()) if rates.max() > 0 else 1.0
            out["selection"] = {"groups": groups, "ratio": ratio, "eligible_groups": len(ok)}
        if self.n_labelled and self.task != "regression":
            frame = pd.DataFrame({c: np.concatenate(self.slice_parts[c]) for c in self.sensitive})
            report = group_fairness(
                frame,
                np.concatenate(self.parts["y"]),
                np.concatenate(self.parts["pred"]),
                sensitive=self.sensitive,
                pos_label=self.positive,
                min_group_size=min_group_size,
            )
            out["labelled"] = report.to_dict()
        ratios = [out.get("selection", {}).get("ratio")]
        crit = out.get("labelled", {}).get("criteria", {})
        ratios += [crit.get(c, {}).get("ratio") for c in ("demographic_parity", "equalized_odds")]
        ratios = [r for r in ratios if r is not None]
        out["ratio"] = min(ratios) if ratios else None
        return out
