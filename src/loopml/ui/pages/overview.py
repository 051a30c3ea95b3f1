"""Page 1, Overview: every endpoint with its traffic split, health, request rate, latency,
active rollout and open alerts."""

from __future__ import annotations

from typing import Any

from loopml.config import Config
from loopml.jsonsafe import jsonable
from loopml.monitor.alerts import live_alerts
from loopml.monitor.queries import latest, open_alerts
from loopml.store import Store
from loopml.store.rows import AlertRow, EndpointRow

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def health(row: EndpointRow | None, alerts: list[AlertRow]) -> tuple[str, str]:
    """(state, why): ``down`` with no champion, ``critical``/``warning`` with open alerts,
    ``frozen`` when automation is stopped, else ``ok``. Only open alerts of live subjects
    count (``monitor.alerts.live_alerts``: a version in the role it is alerted for)."""
    if row is None or row["champion_id"] is None:
        return "down", "no champion is deployed: predictions answer 503"
    alerts = live_alerts(alerts, row)
    worst = min((SEVERITY_ORDER.get(a["severity"], 2) for a in alerts), default=None)
    if worst == 0:
        return "critical", f"{len(alerts)} open alert(s), at least one critical"
    if worst is not None and worst <= 1:
        return "warning", f"{len(alerts)} open alert(s)"
    if row["frozen"]:
        return "frozen", "automation and traffic changes are stopped"
    return "ok", "champion deployed, no open warnings"


def rollout_summary(store: Store, cfg: Config, name: str) -> dict[str, Any] | None:
    """The endpoint's rollout in progress (shadow or a canary step), if any."""
    active = store.rollouts.active(name)
    if not active:
        return None
    r = active[-1]
    steps = list(cfg.deploy.rollout.steps) if cfg.deploy is not None else []
    step = r["step"]
    weight = steps[step] if 0 <= step < len(steps) else None
    label = (
        "shadow"
        if r["state"] == "shadow"
        else (
            f"canary step {step + 1} of {len(steps)} ({weight:g}%)"
            if weight is not None
            else f"canary step {step + 1}"
        )
    )
    q = r["evidence"].get("quality") or {}
    if "interval" in q:
        lo, hi = q["interval"]
        label += (
            f"; {q['score']} challenger - champion {q['estimate']:+.4f} [{lo:+.4f}, {hi:+.4f}] "
            f"on {q['rows']} labelled rows in {q['requests']} requests (margin {q['margin']:.3g})"
        )
    elif q:
        label += f"; paired test waiting: {q.get('why', 'no labelled pairs yet')}"
    return {
        "id": r["id"],
        "state": r["state"],
        "quality": q or None,
        "step": step,
        "steps": steps,
        "weight": weight,
        "label": label,
        "candidate_id": r["candidate_id"],
        "champion_id": r["champion_id"],
        "started_at": r["started_at"],
        "step_started_at": r["step_started_at"],
        "breaches": r["breaches"],
        "judged": r["judged"],
    }


def endpoint_summary(
    store: Store, cfg: Config, name: str, row: EndpointRow | None, alerts: list[AlertRow]
) -> dict[str, Any]:
    last = latest(store, name, role="champion", n=1)
    w = last[0] if last else None
    span = (w["end"] - w["start"]) if w else None
    alerts, stale = serving_alerts(row, alerts)
    state, why = health(row, alerts)
    return {
        "name": name,
        "href": f"/endpoints/{name}",
        "model": row["model"] if row else None,
        "traffic": None
        if row is None
        else {
            "champion": row["champion_id"],
            "canary": row["canary_id"],
            "canary_weight": row["canary_weight"],
            "champion_weight": 100.0 - (row["canary_weight"] or 0.0),
            "shadows": row["shadows"],
            "previous_champion": row["previous_champion_id"],
        },
        "frozen": bool(row["frozen"]) if row else False,
        "health": state,
        "health_reason": why,
        "last_window": None
        if w is None
        else {
            "id": w["id"],
            "start": w["start"],
            "end": w["end"],
            "rows": w["rows"],
            "href": f"/windows/{w['id']}",
        },
        # rows (predictions) per second in the last window; a request may carry many rows
        "rows_per_s": (w["rows"] / span) if w and span else None,
        "latency_p50": w["latency_p50"] if w else None,
        "latency_p99": w["latency_p99"] if w else None,
        "metric": w["metric"] if w else None,
        "performance": w["performance"] if w else None,
        "estimated_performance": w["estimated_performance"] if w else None,
        "accuracy": w["accuracy"] if w else None,
        "estimated_accuracy": w["estimated_accuracy"] if w else None,
        "rollout": rollout_summary(store, cfg, name),
        "open_alerts": [
            {
                "id": a["id"],
                "rule": a["rule"],
                "severity": a["severity"],
                "subject": a["subject"],
                "message": a["message"],
                "last_seen": a["last_seen"],
                "href": f"/windows/{a['window_id']}" if a.get("window_id") else None,
            }
            for a in alerts
        ],
        "stale_alerts": len(stale),
    }


def _alert_version(subject: str) -> int | None:
    """The version an alert's subject names ('version:3/champion'), if any."""
    head = subject.split("/", 1)[0]
    if head.startswith("version:") and head[8:].isdigit():
        return int(head[8:])
    return None


def serving_alerts(
    row: EndpointRow | None, alerts: list[AlertRow]
) -> tuple[list[AlertRow], list[AlertRow]]:
    """(alerts about what serves now, alerts of versions no longer serving): the overview
    judges an endpoint's health by the first; the endpoint page lists both."""
    if row is None:
        return alerts, []
    serving = {row["champion_id"], row["canary_id"], *(s["version_id"] for s in row["shadows"])}
    now: list[AlertRow] = []
    old: list[AlertRow] = []
    for a in alerts:
        v = _alert_version(a["subject"] or "")
        (now if v is None or v in serving else old).append(a)
    return now, old


def overview(store: Store, cfg: Config) -> dict[str, Any]:
    """Context of ``/`` (and ``/index.json``)."""
    rows = {r["name"]: r for r in store.endpoints.list()}
    names = sorted(set(rows) | set(store.monitoring.endpoints()))
    alerts = open_alerts(store, limit=1000)
    by_endpoint: dict[str, list[AlertRow]] = {}
    for a in alerts:
        by_endpoint.setdefault(a["endpoint"], []).append(a)
    return jsonable(
        {
            "page": "overview",
            "title": f"{cfg.project}: endpoints",
            "project": cfg.project,
            "endpoints": [
                endpoint_summary(store, cfg, n, rows.get(n), by_endpoint.get(n, [])) for n in names
            ],
            "open_alerts": len(alerts),
        }
    )
