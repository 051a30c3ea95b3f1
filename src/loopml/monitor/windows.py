"""One monitoring window: scan its Parquet parts once, split by (version, role), and turn the
profiles and joined labels into stored results.

A scan streams record batches (never the window's raw rows in pandas) and feeds, per group:
the feature profile and the output profile on the reference's bin edges (``stats``), a latency
quantile sketch, flag counts, CBPE sums, selection counts per sensitive group, and the
labelled rows. ``results`` builds the window's stored row: summary numbers as columns and the
per-column detail (drift with its histograms, quality findings with evidence, metrics per
slice, fairness groups) as JSON.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.config import Config
from loopml.errors import DataError
from loopml.jsonsafe import jsonable
from loopml.logs.logfiles import LogFiles
from loopml.logs.parts import Part
from loopml.monitor import labelshift
from loopml.monitor.estimation import BinaryEstimate, MulticlassEstimate
from loopml.monitor.performance import Performance, canonical_value, monitor_metric
from loopml.monitor.reference import Reference
from loopml.stats import DatasetProfile, check_quality, column_drift, dataset_drift
from loopml.stats.calibration import calibrate
from loopml.stats.multivariate import sample_drift
from loopml.stats.sketch import QuantileSketch

OUTPUT_COLUMNS = ("_prediction", "_score")
ERROR_FLAG = "error"  # rows whose _flags mention this word count as errors


class Group:
    """Everything one (version, role) group of a window accumulates while batches pass."""

    def __init__(self, ref: Reference | None, cfg: Config, profiles: bool) -> None:
        self.ref = ref
        self.profiles = profiles
        # whole rows for the domain classifier, when the reference kept a sample to compare with
        has_sample = ref is not None and ref.features is not None and ref.features.sample
        self.sample_rows = cfg.monitor.multivariate_rows if has_sample else 0
        self.rows = 0
        self.features: DatasetProfile | None = None
        self.outputs: DatasetProfile | None = None
        self.latency = QuantileSketch()
        self.flags: Counter[str] = Counter()
        self.errors = 0
        binary = (
            ref is not None
            and ref.task == "classification"
            and ref.classes
            and len(ref.classes) == 2
        )
        self.estimate: BinaryEstimate | MulticlassEstimate | None = (
            BinaryEstimate()
            if binary
            else MulticlassEstimate()
            if ref is not None and ref.task == "classification"
            else None
        )
        positive = None if ref is None or ref.positive is None else canonical_value(ref.positive)
        self.perf = Performance(
            cfg.data.sensitive,
            cfg.data.segments,
            positive,
            ref.task if ref is not None else "classification",
        )

    def update(self, batch: pa.RecordBatch, labels: pa.Array | None) -> None:
        self.rows += batch.num_rows
        names = batch.schema.names
        if self.profiles:
            feats = batch.select([c for c in names if not c.startswith("_")])
            if self.features is None:
                self.features = DatasetProfile.from_frame(
                    feats, self.ref.features if self.ref else None, sample_rows=self.sample_rows
                )
            else:
                self.features.update(feats)
            outs = batch.select([c for c in OUTPUT_COLUMNS if c in names])
            if self.outputs is None:
                self.outputs = DatasetProfile.from_frame(
                    outs, self.ref.outputs if self.ref else None
                )
            else:
                self.outputs.update(outs)
            if "_latency_ms" in names:
                lat = pc.fill_null(pc.cast(batch.column("_latency_ms"), pa.float64()), np.nan)
                lat = lat.to_numpy(zero_copy_only=False)
                self.latency.update(lat[np.isfinite(lat)])
            if "_flags" in names:
                vc = pc.value_counts(batch.column("_flags").drop_null())
                for v, n in zip(
                    vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True
                ):
                    self.flags[v] += n
                    if ERROR_FLAG in v.lower():
                        self.errors += n
        positive = (
            self.perf.predicted_positive(batch.column("_prediction"))
            if "_prediction" in names
            else None
        )
        if self.estimate is not None and "_score" in names:
            score = pc.fill_null(pc.cast(batch.column("_score"), pa.float64()), np.nan).to_numpy(
                zero_copy_only=False
            )
            if isinstance(self.estimate, BinaryEstimate) and positive is not None:
                self.estimate.update(
                    calibrate(score, self.ref.calibration if self.ref else None), positive
                )
            elif isinstance(self.estimate, MulticlassEstimate):
                self.estimate.update(score)
        self.perf.count_selection(batch, positive)
        if labels is not None:
            self.perf.add_labelled(batch, labels)


def scan(
    logs: LogFiles,
    parts: Sequence[Part],
    start: float,
    end: float,
    ref_of: Callable[[int], Reference | None],
    cfg: Config,
    labels: pa.Table | None,
    *,
    profiles: bool = True,
) -> dict[tuple[int, str], Group]:
    """Stream the window's rows once and accumulate per (version, role)."""
    groups: dict[tuple[int, str], Group] = {}
    columns = None
    if not profiles:  # labels only: the columns the join, estimates and slices need
        wanted = {
            "_version",
            "_role",
            "_request_id",
            "_prediction",
            "_score",
            *cfg.data.sensitive,
            *cfg.data.segments,
        }
        columns = [c for c in logs.schema(parts).names if c in wanted]
    label_ids = (
        labels.column("_request_id").combine_chunks()
        if labels is not None and labels.num_rows
        else None
    )
    for batch in logs.batches(parts, start, end, columns):
        joined = None
        if label_ids is not None and labels is not None:
            idx = pc.index_in(batch.column("_request_id"), value_set=label_ids)
            joined = pc.take(labels.column("_label"), idx).combine_chunks()
        versions = batch.column("_version")
        roles = batch.column("_role")
        keys = pa.table({"v": versions, "r": roles}).group_by(["v", "r"]).aggregate([]).to_pylist()
        for key in keys:
            v, role = int(key["v"]), str(key["r"])
            if len(keys) == 1:
                part, part_labels = batch, joined
            else:
                mask = pc.and_(pc.equal(versions, v), pc.equal(roles, role))
                part = batch.filter(mask)
                part_labels = None if joined is None else joined.filter(mask)
            g = groups.get((v, role))
            if g is None:
                g = groups[(v, role)] = Group(ref_of(v), cfg, profiles)
            g.update(part, part_labels)
    return groups


def performance_part(g: Group, cfg: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """Columns and results that depend on labels (recomputed when labels arrive).

    A window with fewer than ``monitor.min_window_rows`` rows gets no estimate, and one with
    fewer labelled rows no realised metric: "too few rows", never a number from a handful
    of rows (issue 11 item 7). The estimate is withheld when the labelled rows show it
    unreliable (``labelshift.estimate_check``).
    """
    ref = g.ref
    mon = cfg.monitor
    need = mon.min_window_rows
    metric, metric_note = monitor_metric(mon.performance_metric, g.perf.task)
    classes = ref.classes if ref is not None else None
    n_lab = g.perf.n_labelled
    perf = g.perf.metrics(classes, mon.min_group_size) if n_lab >= need else None
    est = g.estimate.get() if g.estimate is not None and g.rows >= need else None
    notes = []
    if g.rows < need:
        notes.append(f"too few rows: {g.rows} of {need} needed; the window is not scored")
    elif n_lab < need:
        notes.append(
            f"too few labelled rows: {n_lab} of {need} needed for the live {metric}"
            if n_lab
            else f"no labels yet: {need} labelled rows needed for the live {metric}"
        )
    overall = (perf or {}).get("overall") or {}
    check = None
    if est is not None:
        est["calibration"] = (
            "isotonic (reference)"
            if ref and ref.calibration
            else "none: the scores are assumed calibrated"
        )
        check = labelshift.estimate_check(
            g.perf,
            overall.get("accuracy"),
            ref.calibration if ref else None,
            binary=isinstance(g.estimate, BinaryEstimate),
            min_rows=need,
        )
        est["reliability"] = check
        if check["status"] == "unreliable":
            notes.append(check["reason"])
    fair = g.perf.fairness(min_group_size=mon.min_group_size)
    label_drift = None
    if ref is not None and ref.label is not None and ref.target and n_lab >= need:
        labels = g.perf.labels_array()
        try:
            arr = _numeric_or_text(labels, ref.label.kind)
        except (pa.ArrowInvalid, ValueError):
            arr = None  # labels that are not numbers against a numeric training label
        if arr is not None:
            cur = DatasetProfile.from_frame(
                pa.table({ref.target: arr}), DatasetProfile({ref.target: ref.label})
            )
            label_drift = column_drift(ref.target, ref.label, cur.columns[ref.target]).to_dict()
            label_drift["base_rate"] = {
                "reference": labelshift.reference_base_rate(ref.label, ref.positive, ref.task),
                "current": labelshift.base_rate(labels, ref.positive, ref.task),
                # what the model predicted on the same rows: beside the base rate it shows
                # whether the prediction distribution followed the labels
                "predicted": labelshift.base_rate(
                    np.concatenate(g.perf.parts["pred"]), ref.positive, ref.task
                ),
                "of": "mean label" if ref.task == "regression" else f"class {ref.positive!r}",
            }
    unreliable = check is not None and check["status"] == "unreliable"
    shown = None if est is None or unreliable else est
    columns = {
        "labels": n_lab,
        "metric": metric,
        "performance": overall.get(metric),
        "accuracy": overall.get("accuracy"),
        "estimated_performance": (shown or {}).get(metric),
        "estimated_accuracy": (shown or {}).get("accuracy"),
        "estimate_status": None if check is None else check["status"],
        "fairness_ratio": (fair or {}).get("ratio"),
        "label_drift": None if label_drift is None else label_drift["value"],
        "base_rate": None if label_drift is None else label_drift["base_rate"]["current"],
    }
    results = {
        "performance": perf,
        "estimated": est,
        "fairness": fair,
        "label_drift": label_drift,
        "metric_note": metric_note,
        "performance_notes": notes,
        "baseline": {
            k: v
            for k, v in (ref.baseline if ref else {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        },
    }
    return jsonable(columns), jsonable(results)


def _numeric_or_text(y: np.ndarray, kind: str) -> pa.Array:
    if kind == "numeric":
        return pc.cast(pa.array(y.astype(str)), pa.float64())
    return pa.array(y.astype(str))


def full_part(
    g: Group, cfg: Config, previous_rows: list[int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Columns and results of drift, quality and operations (computed once per window)."""
    ref = g.ref
    mon = cfg.monitor
    results: dict[str, Any] = {
        "notes": list(ref.problems)
        if ref
        else ["the version is not in the registry: no reference to compare with"]
    }
    columns: dict[str, Any] = {"rows": g.rows, "errors": g.errors}
    scored = g.rows >= mon.min_window_rows
    if not scored:  # drift on a handful of rows is noise: neither scored nor plotted
        results["too_few_rows"] = {"rows": g.rows, "needed": mon.min_window_rows}
        results["notes"].append(
            f"too few rows: {g.rows} of {mon.min_window_rows} needed (monitor.min_window_rows); "
            "drift and estimates are not computed for this window"
        )
    if scored and ref is not None and ref.features is not None and g.features is not None:
        thr = ref.thresholds("features", g.rows, mon.false_alarm_rate)
        drift = dataset_drift(
            ref.features,
            g.features,
            thresholds=thr,
            importance=ref.importance,
            drift_share=mon.drift_share,
        )
        results["drift"] = drift.to_dict()
        columns.update(
            drift_score=drift.share, drifted=drift.drifted, n_drifted=len(drift.drifted_columns)
        )
    if scored and ref is not None and ref.features is not None and g.features is not None:
        mv = multivariate(ref.features, g.features, cfg)
        if mv is not None:
            results["multivariate"] = mv
            columns["multivariate_auc"] = mv.get("auc")
    if scored and ref is not None and ref.outputs is not None and g.outputs is not None:
        thr = ref.thresholds("outputs", g.rows, mon.false_alarm_rate)
        pdrift = dataset_drift(ref.outputs, g.outputs, thresholds=thr, drift_share=mon.drift_share)
        results["prediction_drift"] = pdrift.to_dict()
        main = {c.column: c for c in pdrift.columns}
        pick = main.get("_score") or main.get("_prediction")
        columns["prediction_drift"] = pick.value if pick else None
    if ref is not None and ref.schema is not None and g.features is not None:
        expected = float(np.median(previous_rows)) if len(previous_rows) >= 3 else None
        findings = check_quality(ref.schema, g.features, expected_rows=expected)
        results["quality"] = [f.to_dict() for f in findings]
        columns.update(
            quality_errors=sum(f.severity == "error" for f in findings),
            quality_warnings=sum(f.severity == "warning" for f in findings),
        )
    if g.latency.n:
        q = g.latency.quantiles(np.array([0.5, 0.9, 0.99]))
        results["latency"] = {
            "p50": float(q[0]),
            "p90": float(q[1]),
            "p99": float(q[2]),
            "n": g.latency.n,
            "rank_error": g.latency.rank_error,
        }
        columns.update(latency_p50=float(q[0]), latency_p99=float(q[2]))
    results["flags"] = dict(g.flags)
    results["errors"] = {
        "count": g.errors,
        "source": f"rows whose _flags mention {ERROR_FLAG!r}; "
        "the log holds answered predictions only",
    }
    return columns, jsonable(results)


def multivariate(
    reference: DatasetProfile, window: DatasetProfile, cfg: Config
) -> dict[str, Any] | None:
    """The domain classifier on the reference's row sample against the window's (None without
    samples); a failure is reported in the result, never raised."""
    try:
        md = sample_drift(reference, window, max_rows=cfg.monitor.multivariate_rows)
    except DataError as exc:
        return {"error": str(exc)}
    if md is None:
        return None
    return {
        **md.to_dict(),
        "method": "domain classifier (gradient-boosted trees, 3-fold cross-validated ROC AUC) "
        "on the reference's row sample against the window's",
    }


def window_profile(g: Group) -> DatasetProfile | None:
    """Features and outputs in one mergeable profile (what is stored for the window), with the
    window's row sample."""
    if g.features is None:
        return None
    cols = dict(g.features.columns)
    if g.outputs is not None:
        cols.update(g.outputs.columns)
    out = DatasetProfile(cols, g.rows)
    out.sample = g.features.sample
    return out
