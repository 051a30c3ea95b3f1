"""The model card as GitHub-flavoured Markdown (``loopml report --format md`` and the
dashboard's version page); the card itself is built in :mod:`loopml.evaluate.documents.card`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loopml.display import number
from loopml.evaluate.documents.card import HEADLINE, USE_KEYS
from loopml.evaluate.xai.attribution import attribution_markdown


def rate_cell(group: Mapping[str, Any], rate: str) -> str:
    """A group's rate for a table: the value, or the value marked '(n/s)' (not sufficient:
    too few rows, positives, negatives or predicted positives to judge it) with the reason."""
    info = group.get(rate) or {}
    value = info.get("value")
    if value is None:
        return "-"
    shown = f"{value:.3f}"
    if not info.get("sufficient", True):
        return f"{shown} (n/s: {info.get('reason', 'too little data')})"
    return shown


def _md(v: Any) -> str:
    return number(v, 4).replace("|", "\\|").replace("\n", " ")


def _table(rows: Sequence[Mapping[str, Any]], cols: Sequence[str]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_md(r.get(c)) for c in cols) + " |" for r in rows]
    return [*out, ""]


def slice_columns(card: Mapping[str, Any]) -> list[str]:
    """The metric columns the slices table shows (those present in the overall metrics)."""
    return [k for k in HEADLINE if k in card["metrics"]["overall"]]


def card_markdown(card: Mapping[str, Any]) -> str:
    """The card as GitHub-flavoured Markdown."""
    m = card["model"]
    use = card["intended_use"]
    lines = [
        f"# Model card: {m['name']} v{m['version']}",
        "",
        f"Status **{m['status']}**, created {m['created_at']}"
        + (f", expires {m['expires_at']}" if m.get("expires_at") else "")
        + f". Artifact `{m['artifact']}` ({m['format']}).",
        "",
        "## Intended use",
        "",
    ]
    for key in USE_KEYS:
        lines.append(
            f"- **{key.replace('_', ' ')}**: {_md(use.get(key)) if use.get(key) else '(not stated: set model.' + key + ' in loopml.yaml)'}"
        )
    lines += ["", "## Data", ""]
    lines += _table(card["data"]["snapshots"], ["role", "hash", "rows", "source"])
    d = card["data"]
    lines += [
        f"Target `{_md(d.get('target'))}`"
        + (
            f" (positive class {_md(d.get('positive_class'))})"
            if d.get("positive_class") is not None
            else ""
        )
        + "; sensitive attributes: "
        f"{', '.join(d.get('sensitive') or []) or 'none declared'}.",
        "",
        "## Metrics",
        "",
    ]
    cols = slice_columns(card)
    lines += _table([{"slice": "overall", **card["metrics"]["overall"]}], ["slice", *cols])
    lines += ["### Per slice", ""]
    lines += _table(card["metrics"]["slices"], ["slice", "kind", *cols, "insufficient"])
    fair = card.get("fairness")
    lines += ["## Fairness", ""]
    if fair:
        lines += [f"**{fair['verdict']}**: {_md(fair['message'])}", ""]
        how = (
            f"intervals (Wilson, {fair.get('confidence') or 0.95:.0%}): pass when the whole "
            "interval clears the threshold, insufficient evidence when it straddles it"
            if fair.get("use_intervals")
            else "point estimates (use_intervals: false)"
        )
        lines += [
            f"Judged on {how}; use_intervals: {number(fair.get('use_intervals'), 4)}; positive class "
            f"{_md(fair.get('positive_class'))}; minimums {_md(fair.get('minimums'))}.",
            "",
        ]
        lines += _table(
            [
                {
                    "threshold": key,
                    "limit": c.get("threshold"),
                    "value": c.get("value"),
                    "interval": (
                        "[{:.3f}, {:.3f}]".format(*c["interval"]) if c.get("interval") else "-"
                    ),
                    "verdict": c.get("verdict"),
                    "worst group": c.get("worst_group"),
                }
                for key, c in (fair.get("checks") or {}).items()
            ],
            ["threshold", "limit", "value", "interval", "verdict", "worst group"],
        )
        lines += _table(
            [
                {
                    "group": g["group"],
                    "n": g["n"],
                    **{r: rate_cell(g, r) for r in ("selection_rate", "tpr", "fpr", "precision")},
                }
                for g in fair["groups"]
            ],
            ["group", "n", "selection_rate", "tpr", "fpr", "precision"],
        )
        lines += ["(n/s): not sufficient data to judge that rate in that group.", ""]
    else:
        lines += ["No fairness gate ran (declare data.sensitive).", ""]
    lines += ["## Gate verdicts", ""]
    lines += _table(
        [
            {
                **g,
                "blocking": "blocking" if g["blocking"] else "advisory",
                "key evidence": "; ".join(
                    f"{k}: {number(v, 4)}" for k, v in g["key_evidence"].items()
                ),
            }
            for g in card["gates"]
        ],
        ["gate", "verdict", "blocking", "message", "key evidence"],
    )
    lines += ["## Feature importance (permutation, held-out)", ""]
    lines += _table(card["importance"][:15], ["feature", "importance", "std"])
    shift = card.get("importance_shift")
    if shift:
        lines += [
            f"Against the champion: Spearman {number(shift.get('spearman'), 4)}; entered the "
            f"top {shift.get('top_k')}: {', '.join(shift.get('entered_top_k') or []) or 'none'}"
            f"; left: {', '.join(shift.get('left_top_k') or []) or 'none'}.",
            "",
        ]
    lines += attribution_markdown(card.get("attributions"), card.get("fairness_gaps") or {})
    lines += ["## Limitations", ""]
    lines += [f"- {_md(x)}" for x in card["limitations"]] or ["- none derived"]
    ln = card["lineage"]
    lines += [
        "",
        "## Lineage",
        "",
        f"- run {_md(ln['run_id'])} ({_md(ln.get('trigger'))}), parent version "
        f"{_md(ln['parent_id'])}, git commit `{_md(ln.get('git_commit'))}`"
        + (" (dirty)" if ln.get("git_dirty") else ""),
        f"- params: `{_md(ln.get('params'))}`",
    ]
    code = ln.get("code") or {}
    if code:
        lines.append(f"- entry point `{_md(code.get('entry_point'))}`; Python files (sha256):")
        lines += [f"  - `{_md(p)}` `{_md(h)}`" for p, h in (code.get("files") or {}).items()]
    if ln.get("threads") is not None:
        lines.append(f"- trained with BLAS/OpenMP threads capped at {ln['threads']}")
    lines.append("")
    return "\n".join(lines)
