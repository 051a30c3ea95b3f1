"""Page 5, Decisions and audit: the append-only log, filterable by endpoint, actor, action and
time, each row linking to its subject and to the evidence it was taken on."""

from __future__ import annotations

from typing import Any

from loopml.config import Config
from loopml.errors import NotFoundError
from loopml.jsonsafe import jsonable
from loopml.store import Store
from loopml.store.rows import DecisionRow
from loopml.ui.pages.page_helpers import subject_link

_WINDOW_KEYS = ("window_id", "window", "windows", "window_ids")


def evidence_links(evidence: Any) -> list[dict[str, str]]:
    """Links to the pages an evidence dict names (monitor windows, versions, alerts)."""
    out: list[dict[str, str]] = []
    if not isinstance(evidence, dict):
        return out
    for key in _WINDOW_KEYS:
        val = evidence.get(key)
        for wid in val if isinstance(val, list) else [val]:
            if isinstance(wid, int) and not isinstance(wid, bool):
                out.append({"label": f"window {wid}", "href": f"/windows/{wid}"})
    for key in ("version", "version_id", "candidate_id", "champion_id"):
        vid = evidence.get(key)
        if isinstance(vid, int) and not isinstance(vid, bool):
            out.append({"label": f"version {vid}", "href": f"/versions/{vid}"})
    for nested in ("alert", "guard", "trigger"):
        if isinstance(evidence.get(nested), dict):
            out += evidence_links(evidence[nested])
    seen: set[str] = set()
    return [x for x in out if not (x["href"] in seen or seen.add(x["href"]))]  # type: ignore[func-returns-value]


def _row(d: DecisionRow) -> dict[str, Any]:
    return {
        **d,
        "href": f"/decisions/{d['id']}",
        "subject_href": subject_link(d["subject"]),
        "evidence_links": evidence_links(d.get("evidence")),
    }


def decisions(
    store: Store,
    cfg: Config,
    *,
    endpoint: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 200,
) -> dict[str, Any]:
    """Context of ``/decisions`` (filters as query parameters)."""
    rows = store.decisions.list(
        endpoint=endpoint or None,
        actor=actor or None,
        action=action or None,
        since=since,
        until=until,
        limit=limit,
    )
    return jsonable(
        {
            "page": "decisions",
            "title": "Decisions and audit log",
            "filters": {
                "endpoint": endpoint,
                "actor": actor,
                "action": action,
                "since": since,
                "until": until,
                "limit": limit,
            },
            "decisions": [_row(d) for d in rows],
            "actors": sorted({d["actor"] for d in rows}),
            "actions": sorted({d["action"] for d in rows}),
            "endpoints": sorted(r["name"] for r in store.endpoints.list()),
        }
    )


def decision(store: Store, cfg: Config, decision_id: int) -> dict[str, Any]:
    """Context of ``/decisions/{id}``: one decision with its full evidence."""
    d = store.decisions.get(decision_id)
    if d is None:
        raise NotFoundError(
            f"No decision {decision_id}. See the log at /decisions.", field="decision"
        )
    return jsonable(
        {"page": "decision", "title": f"Decision {decision_id}: {d['action']}", "decision": _row(d)}
    )
