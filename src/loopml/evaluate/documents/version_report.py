"""Self-contained reports of a version: the model card as HTML and the gate report as JSON and
HTML. Inline CSS and an inline SVG chart; no script, font or stylesheet from anywhere, so a
report opens offline and can be mailed or archived as one file. Templates only format; the
numbers come from :func:`loopml.evaluate.documents.card.model_card` and the stored verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from loopml.display import number
from loopml.evaluate.documents.card import iso, key_evidence, model_card
from loopml.evaluate.documents.card_text import slice_columns
from loopml.evaluate.gating.gates import blocks

if TYPE_CHECKING:
    from loopml.config import Config
    from loopml.store import Store

BAR_WIDTH = 380  # pixels of the longest importance bar


@cache
def _env() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("loopml.evaluate", "templates"),
        autoescape=select_autoescape(["j2", "html"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = partial(number, digits=4)
    return env


def _bars(importance: list[dict[str, Any]], top: int = 15) -> list[dict[str, Any]]:
    rows = importance[:top]
    peak = max((max(r["importance"], 0.0) for r in rows), default=0.0)
    return [
        {
            **r,
            "width": round(BAR_WIDTH * max(r["importance"], 0.0) / peak, 1) if peak else 0,
            "scoring": r.get("scoring", "score"),
        }
        for r in rows
    ]


def card_html(card: Mapping[str, Any]) -> str:
    """The card (from :func:`model_card`) as one self-contained HTML page."""
    settings_min = (card.get("fairness") or {}).get("min_group_size", 30)
    return (
        _env()
        .get_template("card.html.j2")
        .render(
            card=card,
            columns=slice_columns(card),
            bars=_bars(list(card.get("importance") or [])),
            gates=card["gates"],
            min_group=settings_min,
        )
    )


def gate_report_json(version: Mapping[str, Any]) -> dict[str, Any]:
    """Every stored verdict of a version with its evidence, and whether it passed."""
    gates = list(version.get("gates") or [])
    failures = [g["gate"] for g in gates if blocks(g)]
    return {
        "model": version.get("model"),
        "version": version.get("number"),
        "id": version.get("id"),
        "status": version.get("status"),
        "created_at": iso(version.get("created_at")),
        "passed": not failures,
        "blocking_failures": failures,
        "counts": {
            v: sum(g["verdict"] == v for g in gates) for v in ("pass", "fail", "insufficient_data")
        },
        "seconds": round(sum(float(g.get("seconds") or 0) for g in gates), 3),
        "gates": [{**g, "key_evidence": key_evidence(g)} for g in gates],
    }


def gate_report_html(version: Mapping[str, Any]) -> str:
    """The gate report as one self-contained HTML page (evidence folded per gate)."""
    report = gate_report_json(version)
    return _env().get_template("gates.html.j2").render(report=report, gates=report["gates"])


def render(
    version: Mapping[str, Any],
    run: Mapping[str, Any] | None = None,
    cfg: Mapping[str, Any] | None = None,
    *,
    fmt: str = "html",
    snapshots: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """What ``loopml report VERSION --format html|md|json`` writes: the card with the gates."""
    import json

    from loopml.errors import UsageError

    card = model_card(version, run, cfg, snapshots=snapshots)
    if fmt == "html":
        return card_html(card)
    if fmt == "md":
        from loopml.evaluate.documents.card_text import card_markdown

        return card_markdown(card)
    if fmt == "json":
        return json.dumps({"card": card, "gates": gate_report_json(version)}, indent=2, default=str)
    raise UsageError(f"Unknown report format {fmt!r}; use html, md or json.", field="format")


def render_stored(store: Store, cfg: Config, version_id: int, *, fmt: str = "html") -> str:
    """:func:`render` of a stored version, with its run, the project's config and its data
    snapshots read from ``store``."""
    v = store.versions.get(version_id)
    run = store.runs.get(v["run_id"])
    snaps = {k: store.snapshots.get(h) for k, h in v["snapshots"].items() if k != "ids"}
    return render(v, run, cfg.model_dump(mode="json"), fmt=fmt, snapshots=snaps)
