"""Page 4, Version: lineage (data snapshots -> run -> version -> parent), metrics per slice,
gate verdicts with their evidence, the fairness table, importance, the model card, and the
actions (promote, rollback, disable) the page offers; the browser calls the existing JSON
API routes for them with the user's key, so the API's role checks decide."""

from __future__ import annotations

from typing import Any

from loopml.config import Config
from loopml.errors import LoopmlError, NotFoundError
from loopml.evaluate.gating.label_lint import quarantine_rows
from loopml.evaluate.xai.attribution import fairness_gaps
from loopml.jsonsafe import jsonable
from loopml.store import Store
from loopml.store.rows import VersionRow
from loopml.ui.pages.page_helpers import subject_link, version_brief


def lineage(store: Store, v: VersionRow) -> dict[str, Any]:
    try:
        run = store.runs.get(v["run_id"])
    except NotFoundError:
        run = None
    snaps = []
    for role, digest in (v.get("snapshots") or {}).items():
        if role == "ids" or not isinstance(digest, str):
            continue
        try:
            s = store.snapshots.get(digest)
        except NotFoundError:
            s = {"hash": digest}
        snaps.append(
            {
                "role": role,
                "hash": digest,
                "source": s.get("source"),
                "rows": s.get("rows"),
                "columns": len(s.get("columns") or []),
                "created_at": s.get("created_at"),
            }
        )
    parent = None
    if v["parent_id"] is not None:
        try:
            parent = version_brief(store.versions.get(v["parent_id"]))
        except NotFoundError:
            parent = {"id": v["parent_id"], "href": None, "status": "missing"}
    children = [
        version_brief(x)
        for x in store.versions.list(model=v["model"], limit=500)
        if x.get("parent_id") == v["id"]
    ]
    run_view = (
        None
        if run is None
        else {
            k: run.get(k)
            for k in (
                "id",
                "status",
                "trigger",
                "params",
                "git_commit",
                "git_dirty",
                "python",
                "cpu_seconds",
                "peak_memory_mb",
                "wall_seconds",
                "train_seconds",
                "started_at",
                "finished_at",
                "error",
            )
        }
    )
    return {"snapshots": snaps, "run": run_view, "parent": parent, "children": children}


def fairness_table(gates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fairness gate's groups (intersections of the sensitive attributes) and checks."""
    for g in gates:
        if g.get("gate") == "fairness":
            ev = g.get("evidence") or {}
            report = ev.get("report") or {}
            return {
                "sensitive": report.get("sensitive", []),
                "groups": report.get("groups", []),
                "rates": report.get("rates", {}),
                "checks": ev.get("checks", {}),
                "verdict": g.get("verdict"),
                "message": g.get("message"),
            }
    return None


def importance(extra: dict[str, Any]) -> list[dict[str, Any]]:
    """``extra.importance`` as rows ``{feature, importance, std?}``, most important first."""
    imp = extra.get("importance")
    if isinstance(imp, dict):
        imp = imp.get("table", imp.get("features", imp))
    if isinstance(imp, dict):
        rows = [
            {"feature": k, "importance": v} for k, v in imp.items() if isinstance(v, int | float)
        ]
    elif isinstance(imp, list):
        rows = [r for r in imp if isinstance(r, dict) and "feature" in r]
    else:
        return []
    return sorted(rows, key=lambda r: -(r.get("importance") or 0.0))


def model_card(store: Store, cfg: Config, v: VersionRow) -> dict[str, Any] | None:
    """The version's model card (``loopml.evaluate.documents.card``), rendered as HTML by the same
    renderer as ``loopml report`` (``loopml.evaluate.documents.version_report.card_html``), from the same
    inputs: the version, its run, the project's config and the data snapshots."""
    from loopml.evaluate.documents.card import model_card as build
    from loopml.evaluate.documents.card_text import card_markdown
    from loopml.evaluate.documents.version_report import card_html

    try:
        run = store.runs.get(v["run_id"])
        snaps = {}
        for role, digest in (v.get("snapshots") or {}).items():
            if role != "ids" and isinstance(digest, str):
                try:
                    snaps[role] = store.snapshots.get(digest)
                except NotFoundError:
                    continue
        doc = build(v, run, cfg.model_dump(mode="json"), snapshots=snaps)
        return {"fields": doc, "markdown": card_markdown(doc), "html": card_html(doc)}
    except (LoopmlError, TypeError, KeyError, ValueError):
        return None


def actions(store: Store, v: VersionRow) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Where the version is deployed, and the actions the page offers (the API checks roles)."""
    vid = v["id"]
    placed: list[dict[str, Any]] = []
    acts: list[dict[str, Any]] = []
    for ep in store.endpoints.list():
        if ep["model"] != v["model"]:
            continue
        role = (
            "champion"
            if ep["champion_id"] == vid
            else "canary"
            if ep["canary_id"] == vid
            else "shadow"
            if any(s["version_id"] == vid for s in ep["shadows"])
            else None
        )
        placed.append(
            {
                "endpoint": ep["name"],
                "role": role,
                "champion_id": ep["champion_id"],
                "canary_id": ep["canary_id"],
                "canary_weight": ep["canary_weight"],
                "previous_champion_id": ep["previous_champion_id"],
                "href": f"/endpoints/{ep['name']}",
            }
        )
        if role != "champion" and v["status"] not in ("rejected", "disabled", "retired"):
            acts.append(
                {
                    "action": "promote",
                    "endpoint": ep["name"],
                    "needs": "deployer",
                    "url": f"/v1/endpoints/{ep['name']}/promote",
                    "body": {"version": vid},
                    "label": f"Promote to champion of {ep['name']}",
                    "confirm": f"Make version {vid} the champion of endpoint {ep['name']!r}? "
                    f"It replaces version {ep['champion_id']}.",
                }
            )
        if role is not None and (role != "champion" or ep["previous_champion_id"] is not None):
            what = (
                "drops the canary and shadows"
                if ep["canary_id"] is not None or ep["shadows"]
                else f"returns to version {ep['previous_champion_id']}"
            )
            acts.append(
                {
                    "action": "rollback",
                    "endpoint": ep["name"],
                    "needs": "deployer",
                    "url": f"/v1/endpoints/{ep['name']}/rollback",
                    "body": {},
                    "label": f"Roll back {ep['name']}",
                    "confirm": f"Roll back endpoint {ep['name']!r}? This {what}.",
                }
            )
    if v["status"] != "disabled":
        acts.append(
            {
                "action": "disable",
                "endpoint": None,
                "needs": "deployer",
                "url": f"/v1/versions/{vid}/disable",
                "body": {},
                "label": "Disable (kill switch)",
                "confirm": f"Disable version {vid} now? It is taken out of every endpoint at "
                "once and cannot be deployed again.",
            }
        )
    return placed, acts


def version(store: Store, cfg: Config, version_id: int) -> dict[str, Any]:
    """Context of ``/versions/{id}``."""
    v = store.versions.get(version_id)
    gates = v.get("gates") or []
    placed, acts = actions(store, v)
    labels_gate = next((g for g in gates if g.get("gate") == "labels"), None)
    quarantine = quarantine_rows(labels_gate)[:200] if labels_gate else []
    decisions = store.decisions.list(subject=f"version:{v['id']}", limit=50)
    return jsonable(
        {
            "page": "version",
            "title": f"Version {v['id']} ({v['model']} #{v['number']}, {v['status']})",
            "version": {
                k: v.get(k)
                for k in (
                    "id",
                    "model",
                    "number",
                    "status",
                    "format",
                    "artifact",
                    "reference_profile",
                    "created_at",
                    "status_changed_at",
                    "expires_at",
                    "run_id",
                    "parent_id",
                    "manifest_signature",
                )
            },
            "lineage": lineage(store, v),
            "signature": v.get("signature"),
            "metrics": v.get("metrics") or {},
            "slices": v.get("slices") or [],
            "gates": [
                {
                    "gate": g.get("gate"),
                    "verdict": g.get("verdict"),
                    "blocking": g.get("blocking"),
                    "message": g.get("message"),
                    "evidence": g.get("evidence") or {},
                }
                for g in gates
            ],
            "fairness": fairness_table(gates),
            "importance": importance(v.get("extra") or {}),
            "attributions": (v.get("extra") or {}).get("explanation"),
            "fairness_gaps": fairness_gaps(gates),
            "quarantine": quarantine,
            "card": model_card(store, cfg, v),
            "deployed": placed,
            "actions": acts,
            "decisions": [
                {**d, "href": f"/decisions/{d['id']}", "subject_href": subject_link(d["subject"])}
                for d in decisions
            ],
        }
    )
