"""Views over many rows' attributions (:mod:`loopml.evaluate.xai.explain`): the global importance
of each column (mean |attribution|, Lundberg et al. 2020's global SHAP importance), how it moved
in a monitoring window (attribution drift), and which columns account for the gap in mean
score between two groups (difference of mean attributions).

The gap decomposition is exact for the exact methods: every row's value is the same base value
plus its attributions, so ``mean(value | group) - mean(value | reference)`` equals the sum over
columns of ``mean(attribution | group) - mean(attribution | reference)``. For the model-agnostic
method the base value is the same too (one background), so the identity holds as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from loopml.evaluate.xai.explain import Explainer, Explanation


def mean_abs(result: Explanation) -> dict[str, float]:
    """Mean |attribution| per column, largest first."""
    values = np.abs(result.attributions).mean(axis=0) if len(result.values) else []
    pairs = sorted(zip(result.columns, map(float, values), strict=True), key=lambda kv: -kv[1])
    return dict(pairs)


def global_summary(result: Explanation, explainer: Explainer | None = None) -> dict[str, Any]:
    """What the card and the version page show: method, output, rows, mean |attribution|."""
    out = {
        "output": result.output,
        "method": result.method,
        "exact": result.exact,
        "rows": len(result.values),
        "base_value": float(result.base_values.mean()) if len(result.values) else None,
        "mean_abs": mean_abs(result),
    }
    if result.notes:
        out["notes"] = list(result.notes)
    return out


def attribution_drift(
    reference: Mapping[str, float], window: Mapping[str, float]
) -> list[dict[str, Any]]:
    """Per column: reference and window mean |attribution|, their difference and ratio, and
    each one's share of the total; largest absolute change first."""
    ref_total = sum(reference.values()) or 1.0
    win_total = sum(window.values()) or 1.0
    rows: list[dict[str, Any]] = []
    for col in dict.fromkeys([*reference, *window]):
        r, w = float(reference.get(col, 0.0)), float(window.get(col, 0.0))
        rows.append(
            {
                "feature": col,
                "reference": r,
                "window": w,
                "change": w - r,
                "ratio": (w / r) if r > 0 else None,
                "reference_share": r / ref_total,
                "window_share": w / win_total,
            }
        )
    rows.sort(key=lambda d: -abs(d["change"]))
    return rows


def gap(
    result: Explanation,
    in_group: np.ndarray,
    in_reference: np.ndarray,
    *,
    group: str,
    reference: str,
) -> dict[str, Any]:
    """Which columns account for the gap in mean explained output between two sets of rows."""
    a, b = np.asarray(in_group, bool), np.asarray(in_reference, bool)
    if not a.any() or not b.any():
        return {
            "group": group,
            "reference": reference,
            "n_group": int(a.sum()),
            "n_reference": int(b.sum()),
            "reason": "one of the two groups has no rows",
        }
    diff = result.attributions[a].mean(axis=0) - result.attributions[b].mean(axis=0)
    order = np.argsort(-np.abs(diff), kind="stable")
    return {
        "group": group,
        "reference": reference,
        "n_group": int(a.sum()),
        "n_reference": int(b.sum()),
        "output": result.output,
        "method": result.method,
        "mean_group": float(result.values[a].mean()),
        "mean_reference": float(result.values[b].mean()),
        "gap": float(result.values[a].mean() - result.values[b].mean()),
        "attributions": {result.columns[i]: float(diff[i]) for i in order},
        "top": [result.columns[i] for i in order[:3]],
    }


def group_mask(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Rows of the group named like ``"SEX=2 & RAC1P=1"`` (as the fairness report names it)."""
    mask = np.ones(len(frame), dtype=bool)
    for part in name.split(" & "):
        col, _, value = part.partition("=")
        if col not in frame.columns:
            return np.zeros(len(frame), dtype=bool)
        values = frame[col]
        text = values.astype(object).map(lambda v: "None" if v is None or v != v else str(v))
        mask &= (text == value).to_numpy()
    return mask


def explain_gaps(
    explainer: Explainer,
    X: pd.DataFrame,
    frame: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    *,
    max_rows: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """:func:`gap` for each ``(group, reference)`` pair, explaining only the rows of those
    groups (at most ``max_rows`` per group, drawn at random)."""
    X = X.reset_index(drop=True)
    frame = frame.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    masks: dict[str, np.ndarray] = {}
    for g, r in pairs:
        for name in (g, r):
            if name not in masks:
                rows = np.flatnonzero(group_mask(frame, name))
                if len(rows) > max_rows:
                    rows = np.sort(rng.choice(rows, max_rows, replace=False))
                masks[name] = rows
    keep = np.unique(np.concatenate([*masks.values(), np.array([], dtype=np.int64)]))
    if not len(keep):
        return [gap_empty(g, r) for g, r in pairs]
    result = explainer.explain(X.iloc[keep])
    where = {int(i): j for j, i in enumerate(keep)}
    out = []
    for g, r in pairs:
        a = np.zeros(len(keep), dtype=bool)
        b = np.zeros(len(keep), dtype=bool)
        a[[where[int(i)] for i in masks[g]]] = True
        b[[where[int(i)] for i in masks[r]]] = True
        out.append(gap(result, a, b, group=g, reference=r))
    return out


def gap_empty(group: str, reference: str) -> dict[str, Any]:
    return {"group": group, "reference": reference, "reason": "neither group has rows"}


def fairness_explanation(
    ctx: Any, checks: Mapping[str, Mapping[str, Any]], *, max_rows: int = 2000
) -> tuple[dict[str, Any], str]:
    """For each failed fairness check: which columns carry the gap in mean score between its
    worst group and its best (reference) group, on the gate's held-out rows; and a sentence
    for the gate's message. Never raises: an explanation that cannot be made says why."""
    failed = {
        k: c for k, c in checks.items() if c.get("verdict") == "fail" and c.get("worst_group")
    }
    if not failed:
        return {}, ""
    try:
        from loopml.evaluate.xai.explain import Budget

        X = ctx.X_test
        features = list(ctx.features or X.columns)
        k = len(features)
        explainer = Explainer(
            ctx.model,
            features=features,
            task=ctx.task,
            target_class=ctx.pos_label,
            background=X.sample(min(100, len(X)), random_state=ctx.seed),
            # the model-agnostic fallback's budget: one permutation (forward and back) per
            # row against 25 background rows, on at most 60 rows per group (~10 s measured
            # for the employment model with native categorical splits on a loaded box)
            budget=Budget(background_rows=25, max_evals=2 * k + 1, seed=ctx.seed),
        )
        explainer.explain(X.iloc[:2])  # picks and checks the method
        cap = max_rows if explainer.exact else min(max_rows, 60)
        pairs = list(dict.fromkeys((c["worst_group"], c["best_group"]) for c in failed.values()))
        gaps = explain_gaps(explainer, X, ctx.frame, pairs, max_rows=cap, seed=ctx.seed)
    except Exception as exc:  # an explanation must never fail the gate
        return {"error": f"{type(exc).__name__}: {exc}"}, ""
    by_pair = dict(zip(pairs, gaps, strict=True))
    out = {key: by_pair[(c["worst_group"], c["best_group"])] for key, c in failed.items()}
    first = next(iter(out.values()))
    if not first.get("top"):
        return out, ""
    top = first["top"][0]
    sentence = (
        f" Largest part of the score gap between {first['group']} and {first['reference']}: "
        f"{top} ({first['attributions'][top]:+.2f} of {first['gap']:+.2f} {first['output']})."
    )
    return out, sentence


def summarise_version(
    model: Any,
    X: pd.DataFrame,
    *,
    features: Sequence[str],
    task: str,
    max_rows: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """The version's global view, stored at registration (``extra.explanation``): mean
    |attribution| per column over at most ``max_rows`` held-out rows (60 when only the
    model-agnostic method applies). Never raises: a failure is recorded as ``error``."""
    from loopml.evaluate.xai.explain import Budget

    try:
        k = len(features)
        explainer = Explainer(
            model,
            features=features,
            task=task,
            background=X.sample(min(100, len(X)), random_state=seed),
            budget=Budget(background_rows=25, max_evals=2 * k + 1, seed=seed),
        )
        explainer.explain(X.iloc[:2])
        n = min(len(X), max_rows if explainer.exact else 60)
        rows = X.sample(n, random_state=seed) if n < len(X) else X
        return global_summary(explainer.explain(rows))
    except ImportError as exc:
        return {"error": f"{exc}; install the explain extra: pip install 'loopml[explain]'"}
    except Exception as exc:  # an explanation must never stop a registration
        return {"error": f"{type(exc).__name__}: {exc}"}


def fairness_gaps(gates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The fairness gate's gap explanations from stored verdicts (``{}`` when none)."""
    for g in gates:
        if g.get("gate") == "fairness":
            why = (g.get("evidence") or {}).get("explanation") or {}
            return {k: v for k, v in why.items() if isinstance(v, dict)}
    return {}


def attribution_markdown(summary: Mapping[str, Any] | None, gaps: Mapping[str, Any]) -> list[str]:
    """The model card's "Attributions" section (markdown lines)."""
    lines = ["## Attributions (mean |Shapley value| per column, held-out rows)", ""]
    if not summary or summary.get("error") or not summary.get("mean_abs"):
        why = (summary or {}).get("error") or "not computed for this version"
        return [*lines, f"No attributions: {why}.", ""]
    lines += [
        f"{summary['method']} method, {summary['rows']} rows, in units of the "
        f"{summary['output']} (base value {summary['base_value']:.4g}).",
        "",
        "| feature | mean abs attribution |",
        "| --- | --- |",
        *(f"| {k} | {v:.4g} |" for k, v in list(summary["mean_abs"].items())[:15]),
        "",
    ]
    for key, g in gaps.items():
        if not g.get("attributions"):
            continue
        top = ", ".join(f"{c} {g['attributions'][c]:+.3g}" for c in g["top"])
        lines += [
            f"Fairness gap ({key}): mean {g['output']} of {g['group']} minus {g['reference']} "
            f"is {g['gap']:+.3g}; the columns carrying most of it: {top}.",
            "",
        ]
    return lines
