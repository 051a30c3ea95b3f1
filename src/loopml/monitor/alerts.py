"""Alert rules over window results: persistence (k of m windows), cooldown, dedupe, delivery.

A rule judges each window of an (endpoint, version, role) series (``monitor.breaches``):
breached, not breached, or not judgeable (no labels yet, too few rows). It *fires* at a
window when at least ``k`` of the last ``m`` judgeable windows up to it breached (persistence
against one-window noise, research note "loop" section 4). Alerts are deduplicated by (rule, endpoint, subject): while one is
open, further firing windows only update it (count, last seen, evidence). It resolves at a
judged window where the rule no longer fires. A key that fires again within ``cooldown`` of
its last firing reopens the old alert without sending it again. Times are window end times,
so a backfill behaves as the live run would have.

Alerts follow traffic (issue 11 item 6): a subject ``version:V/ROLE`` is *live* while the
endpoint routes ROLE to V (champion, canary with a weight above 0, or a shadow). At every pass
``retire_subjects`` resolves the open alerts of subjects that left traffic, with the reason in
``evidence.resolution``; a rule that stops firing resolves with its numbers there too. Endpoint
health counts only the open alerts of live subjects (``live_alerts``); endpoint-wide subjects
(``endpoint:E``, e.g. the retrain breaker) are always live, and ``batch`` scoring subjects are
not traffic: they resolve only when their condition clears and never make an endpoint unhealthy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from loopml.config import AlertRule, Config
from loopml.monitor.breaches import judge, rules_of
from loopml.monitor.webhooks import Delivery, deliver
from loopml.store import Store
from loopml.store.rows import AlertRow, EndpointRow


def _message(rule: AlertRule, endpoint: str, subject: str, ev: dict[str, Any], hits: int) -> str:
    name = {
        "drift": "dataset drift share",
        "quality": "data-quality errors",
        "performance": f"{ev.get('metric')}",
        "estimated_performance": f"estimated {ev.get('metric')}",
        "fairness": "fairness ratio",
        "latency": "p99 latency (ms)",
        "errors": "error rate",
        "refused": "share of rows refused",
    }[rule.on]
    value = ev.get("value")
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    return (
        f"{rule.name}: {name} {shown} {ev.get('op')} {ev.get('threshold'):.4g} on endpoint "
        f"{endpoint!r} ({subject}) in {hits} of the last {rule.m} judged windows"
    )


def _payload(alert: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "rule",
        "on",
        "severity",
        "endpoint",
        "subject",
        "status",
        "message",
        "count",
        "first_seen",
        "last_seen",
        "evidence",
    )
    return {"type": "loopml.alert", **{k: alert[k] for k in keys}}


def evaluate(
    store: Store,
    cfg: Config,
    endpoint: str,
    version: int,
    role: str,
    starts: Sequence[float],
    baseline: dict[str, Any],
    *,
    delivery: Delivery | None = None,
    live: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Apply every rule at each window in ``starts`` (changed windows of one series), in time
    order; returns the alert events (opened, updated, reopened, resolved). With ``live`` (the
    endpoint's live subjects), a routed subject outside it only resolves, never fires: late
    labels of a version that left traffic must not reopen its alerts."""
    if not starts:
        return []
    mon = store.monitoring
    series = mon.series(endpoint, version=version, role=role, until=max(starts) + 1e-6)
    position = {r["start"]: i for i, r in enumerate(series)}
    subject = f"version:{version}/{role}"
    events: list[dict[str, Any]] = []
    for rule in rules_of(cfg):
        verdicts = [judge(rule, r, cfg, baseline) for r in series]
        ids = [r["id"] for r in series]
        for i, ev, hits in persisted(rule, verdicts, starts, position, ids):
            row = series[i]
            ev["window"] = {"id": row["id"], "start": row["start"], "end": row["end"]}
            if rule.on == "drift" and verdicts[i][0]:
                ev["drifted_columns"] = (mon.window(row["id"])["results"].get("drift") or {}).get(
                    "drifted_columns"
                )
            firing = hits >= rule.k
            if firing and live is not None and _traffic_subject(subject) and subject not in live:
                continue
            event = _apply(store, cfg, rule, endpoint, subject, row, ev, firing, hits, delivery)
            if event:
                events.append(event)
    return events


def persisted(
    rule: AlertRule,
    verdicts: Sequence[tuple[bool | None, dict[str, Any]]],
    starts: Sequence[float],
    position: Mapping[float, int],
    ids: Sequence[Any],
) -> Iterator[tuple[int, dict[str, Any], int]]:
    """k of m persistence: at each changed window (by start, in time order) that has a verdict,
    its position, its evidence with the last ``rule.m`` judged windows (``ids``) and the
    breached ones among them, and the number of breaches."""
    for s in sorted(set(starts)):
        i = position.get(s)
        if i is None or verdicts[i][0] is None:
            continue
        judged = [j for j in range(i + 1) if verdicts[j][0] is not None][-rule.m :]
        breached = [j for j in judged if verdicts[j][0]]
        ev = dict(verdicts[i][1])
        ev.update(
            k=rule.k,
            m=rule.m,
            windows=[ids[j] for j in judged],
            breached=[ids[j] for j in breached],
        )
        yield i, ev, len(breached)


def _apply(
    store: Store,
    cfg: Config,
    rule: AlertRule,
    endpoint: str,
    subject: str,
    row: Mapping[str, Any],
    ev: dict[str, Any],
    firing: bool,
    hits: int,
    delivery: Delivery | None,
    window_id: int | None = -1,
) -> dict[str, Any] | None:
    """Open, update, reopen or resolve the alert of (rule, endpoint, subject) at window
    ``row`` (its ``id`` dedupes reruns; ``window_id`` is the monitor window the alert links
    to, that row's unless given)."""
    mon = store.monitoring
    t = row["end"]
    if window_id == -1:
        window_id = row["id"]
    current = mon.open_alert(rule.name, endpoint, subject)
    if not firing:
        if current is not None and t >= current["last_seen"]:
            reason = (
                f"condition cleared: {hits} of the last {len(ev.get('windows', []))} judged "
                f"windows breach, fewer than k = {rule.k}"
            )
            mon.update_alert(
                current["id"],
                status="resolved",
                resolved_at=t,
                evidence={
                    **current["evidence"],
                    "resolved_by": ev,
                    "resolution": {"reason": reason, "kind": "cleared", "at": t},
                },
            )
            return {
                "event": "resolved",
                "alert": current["id"],
                "rule": rule.name,
                "reason": reason,
            }
        return None
    message = _message(rule, endpoint, subject, ev, hits)
    if current is not None:
        seen = list(current["evidence"].get("seen_windows", []))
        if row["id"] in seen:
            return None  # this window was already counted (a rerun)
        mon.update_alert(
            current["id"],
            count=current["count"] + 1,
            last_seen=max(t, current["last_seen"]),
            message=message,
            window_id=window_id,
            evidence={
                **ev,
                "seen_windows": [*seen, row["id"]][-100:],
                "opened": current["evidence"].get("opened"),
            },
        )
        return {"event": "updated", "alert": current["id"], "rule": rule.name}
    last = mon.last_alert(rule.name, endpoint, subject)
    if last is not None and (
        row["id"] in last["evidence"].get("seen_windows", [])
        or (last["resolved_at"] is not None and t <= last["resolved_at"])
    ):
        return None  # a window this key's history already judged (a rerun or a late recompute)
    if last is not None and 0 <= t - last["last_seen"] < rule.cooldown:
        mon.update_alert(
            last["id"],
            status="open",
            resolved_at=None,
            count=last["count"] + 1,
            last_seen=t,
            message=message,
            window_id=window_id,
            evidence={
                **ev,
                "opened": last["evidence"].get("opened"),
                "seen_windows": [*last["evidence"].get("seen_windows", []), row["id"]][-100:],
                "cooldown": f"fired again within {rule.cooldown:.0f} s of its last "
                "firing: reopened, not sent again",
            },
        )
        return {"event": "reopened", "alert": last["id"], "rule": rule.name}
    alert_id = mon.add_alert(
        rule=rule.name,
        on=rule.on,
        endpoint=endpoint,
        subject=subject,
        severity=rule.severity,
        status="open",
        message=message,
        evidence={**ev, "seen_windows": [row["id"]], "opened": ev},
        count=1,
        first_seen=t,
        last_seen=t,
        window_id=window_id,
    )
    urls = [rule.webhook] if rule.webhook else list(cfg.monitor.webhooks)
    if urls:
        outcome = deliver(urls, _payload(mon.alert(alert_id)), delivery)
        mon.update_alert(
            alert_id,
            delivery=outcome,
            notified_at=time.time() if any(o["ok"] for o in outcome) else None,
        )
    return {"event": "opened", "alert": alert_id, "rule": rule.name}


def live_subjects(row: EndpointRow | None) -> set[str]:
    """The ``version:V/ROLE`` subjects an endpoint row routes traffic to now."""
    if row is None:
        return set()
    out = set()
    if row.get("champion_id") is not None:
        out.add(f"version:{row['champion_id']}/champion")
    weight = row.get("canary_weight")
    if row.get("canary_id") is not None and (weight is None or weight > 0):
        out.add(f"version:{row['canary_id']}/canary")
    for sh in row.get("shadows") or []:
        out.add(f"version:{sh['version_id']}/shadow")
    return out


ROUTED_ROLES = ("champion", "canary", "shadow")


def _traffic_subject(subject: str) -> bool:
    """Subjects whose life follows routing: a version in a routed role."""
    return subject.startswith("version:") and subject.rpartition("/")[2] in ROUTED_ROLES


def is_live(alert: Mapping[str, Any], subjects: set[str]) -> bool:
    """Whether an alert's subject is live (see the module docstring)."""
    subject = alert["subject"]
    if _traffic_subject(subject):
        return subject in subjects
    return not subject.endswith("/batch")


def live_alerts(alerts: Sequence[AlertRow], row: EndpointRow | None) -> list[AlertRow]:
    """The open alerts that count for an endpoint's health: those of live subjects."""
    subjects = live_subjects(row)
    return [a for a in alerts if a.get("status", "open") == "open" and is_live(a, subjects)]


def _describe(subjects: set[str]) -> str:
    return ", ".join(sorted(s.removeprefix("version:") for s in subjects)) or "nothing"


def retire_subjects(
    store: Store, endpoint: str, row: EndpointRow, now: float
) -> list[dict[str, Any]]:
    """Resolve the open alerts of an endpoint whose subject left traffic; returns the events."""
    subjects = live_subjects(row)
    events = []
    for a in store.monitoring.alerts(status="open", endpoint=endpoint, limit=10_000):
        if not _traffic_subject(a["subject"]) or a["subject"] in subjects:
            continue
        version, _, role = a["subject"].removeprefix("version:").partition("/")
        reason = (
            f"version {version} no longer serves as {role} on endpoint {endpoint!r} "
            f"(traffic now: {_describe(subjects)})"
        )
        store.monitoring.update_alert(
            a["id"],
            status="resolved",
            resolved_at=max(now, a["last_seen"]),
            evidence={
                **a["evidence"],
                "resolution": {"reason": reason, "kind": "left_traffic", "at": now},
            },
        )
        events.append({"event": "resolved", "alert": a["id"], "rule": a["rule"], "reason": reason})
    return events
