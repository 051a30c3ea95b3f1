"""Page 3, Monitor window: per-feature drift sorted by effect size, the reference vs current
histogram of any feature, data-quality findings with their evidence, and the window's
performance, estimate, fairness groups and latency (from ``monitor.queries.window_detail``),
and which features moved the predictions (attribution drift, ``ui.explanations``).

Effect size here is the drift score divided by the column's own alarm threshold: scores of
different methods (normalised Wasserstein for numbers, Jensen-Shannon for categories) are not
on one scale, but
"how many thresholds past normal" is, and it orders the columns the way the alarm judges them.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from loopml.config import Config
from loopml.evaluate.measure.metrics import REGRESSION_METRICS
from loopml.jsonsafe import jsonable
from loopml.monitor.queries import window_detail
from loopml.store import Store
from loopml.ui.explanations import window_explanation
from loopml.ui.pages.page_helpers import refused_summary


def histogram(evidence: dict[str, Any]) -> dict[str, Any] | None:
    """Bin labels and the share of rows per bin, reference vs current."""
    ref, cur = evidence.get("reference"), evidence.get("current")
    if not isinstance(ref, list) or not isinstance(cur, list) or len(ref) != len(cur):
        return None
    if "edges" in evidence:
        e = evidence["edges"]
        if len(ref) != len(e) + 1:
            return None
        labels = [
            f"< {e[0]:.4g}",
            *(f"{a:.4g} to {b:.4g}" for a, b in pairwise(e)),
            f">= {e[-1]:.4g}",
        ]
        keep = [
            i for i in range(len(ref)) if not (i in (0, len(ref) - 1) and ref[i] == cur[i] == 0)
        ]
    elif "categories" in evidence:
        labels = [str(c) for c in evidence["categories"]]
        rest = evidence.get("rest") or {}
        if rest.get("reference") or rest.get("current"):
            labels = [*labels, "(other)"]
            ref, cur = [*ref, rest.get("reference", 0)], [*cur, rest.get("current", 0)]
        keep = list(range(len(ref)))
    else:
        return None
    if len(labels) != len(ref):
        return None
    rt, ct = sum(ref) or 1, sum(cur) or 1
    return {
        "labels": [labels[i] for i in keep],
        "reference": [ref[i] / rt for i in keep],
        "current": [cur[i] / ct for i in keep],
        "reference_counts": [ref[i] for i in keep],
        "current_counts": [cur[i] for i in keep],
        "approximate": bool(evidence.get("approximate")),
    }


def drift_table(drift: dict[str, Any] | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Columns sorted by effect (score / threshold, largest first) and their histograms."""
    rows, hists = [], {}
    for c in (drift or {}).get("columns", []):
        thr = c.get("threshold")
        value = c.get("value")
        effect = value / thr if isinstance(value, int | float) and thr else None
        rows.append(
            {
                "column": c["column"],
                "kind": c.get("kind"),
                "method": c.get("method"),
                "value": value,
                "threshold": thr,
                "effect": effect,
                "drifted": bool(c.get("drifted")),
                "p_value": c.get("p_value"),
                "scores": c.get("scores", {}),
                "n_reference": c.get("n_reference"),
                "n_current": c.get("n_current"),
            }
        )
        h = histogram(c.get("evidence") or {})
        if h is not None:
            hists[c["column"]] = h
    rows.sort(key=lambda r: (r["effect"] is None, -(r["effect"] or 0.0)))
    return rows, hists


def window(store: Store, cfg: Config, window_id: int) -> dict[str, Any]:
    """Context of ``/windows/{id}``."""
    d: dict[str, Any] = dict(window_detail(store, window_id))
    res = d.pop("results") or {}
    features, hists = drift_table(res.get("drift"))
    outputs, out_hists = drift_table(res.get("prediction_drift"))
    drift = res.get("drift") or {}
    perf = res.get("performance") or {}
    fair = res.get("fairness") or {}
    metric = d.get("metric") or "accuracy"
    regression = metric in REGRESSION_METRICS
    fairness = {
        "ratio": (fair.get("selection") or {}).get("ratio"),
        "selection": (fair.get("selection") or {}).get("groups", []),
        "labelled": (fair.get("labelled") or {}).get("groups", []),
        "min_group_size": fair.get("min_group_size"),
    }
    return jsonable(
        {
            "page": "window",
            "title": f"Window {d['id']}: {d['endpoint']} version {d['version']} ({d['role']})",
            "window": {k: v for k, v in d.items() if k not in ("log_files", "label_files")},
            "links": {
                "endpoint": f"/endpoints/{d['endpoint']}",
                "version": f"/versions/{d['version']}",
            },
            "drift": {
                "share": drift.get("share"),
                "drift_share": drift.get("drift_share"),
                "drifted": drift.get("drifted"),
                "drifted_columns": drift.get("drifted_columns", []),
                "skipped": drift.get("skipped", {}),
                "columns": features,
            },
            "prediction_drift": outputs,
            "histograms": {**hists, **out_hists},
            "first_histogram": features[0]["column"]
            if features
            else (outputs[0]["column"] if outputs else None),
            "quality": res.get("quality", []),
            "performance": {"overall": perf.get("overall"), "slices": perf.get("slices", [])},
            "metric": metric,
            "metric_note": res.get("metric_note"),
            "estimated": res.get("estimated"),
            "estimated_note": None
            if res.get("estimated") is not None
            else (
                "not applicable: a regression model has no class probabilities to estimate from"
                if regression
                else "none: the version's predictions carry no probabilities"
            ),
            "baseline": res.get("baseline", {}),
            "fairness": fairness,
            "explanation": window_explanation(store, cfg, d, fairness),
            "label_drift": res.get("label_drift"),
            # issue 11 item 7: "too few rows" windows, the estimate's check against labels
            "too_few_rows": res.get("too_few_rows"),
            "multivariate": res.get("multivariate"),
            "performance_notes": res.get("performance_notes", []),
            "estimate_reliability": (res.get("estimated") or {}).get("reliability"),
            "latency": res.get("latency"),
            "errors": res.get("errors"),
            "flags": res.get("flags", {}),
            "notes": res.get("notes", []),
            "reference": res.get("reference"),
            # issue 13 item 4: requests the endpoint refused (4xx) in the same window
            "refused": refused_summary(store.refused.at(d["endpoint"], d["start"])),
        }
    )
