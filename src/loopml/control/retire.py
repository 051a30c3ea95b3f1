"""Retirement: versions past ``deploy.expire_after`` or idle for ``deploy.idle_after``.

A version is *expired* when its ``expires_at`` (set at registration) has passed, and *idle*
when it has been out of every endpoint's traffic for ``idle_after`` (its last status change
is that old, and it was created before then) and the monitor saw none of its rows in that
time (Uber's Michelangelo retires on traffic, not age; docs/design/measurements.md, "Retirement by traffic").
``store.retire`` keeps it in the registry with its history and takes it out of every endpoint
(the servers unload it at their next poll). A version serving as a champion is never retired
by the controller, since that would leave the endpoint without a replacement: it gets a warning decision
instead (once a day). Versions on a frozen endpoint are left alone.
"""

from __future__ import annotations

from loopml.control.context import Context, Decided

DAY = 86400.0
SKIP = ("retired", "disabled")


def _serving(ctx: Context) -> tuple[dict[int, list[tuple[str, str]]], set[str]]:
    roles: dict[int, list[tuple[str, str]]] = {}
    frozen = set()
    for ep in ctx.store.endpoints.list():
        if ep["frozen"]:
            frozen.add(ep["name"])
        for vid, role in (
            (ep["champion_id"], "champion"),
            (ep["canary_id"], "canary"),
            *((s["version_id"], "shadow") for s in ep["shadows"]),
        ):
            if vid is not None:
                roles.setdefault(vid, []).append((ep["name"], role))
    return roles, frozen


def _seen_since(ctx: Context, version_id: int, since: float) -> bool:
    return any(
        ctx.store.monitoring.series(e, version=version_id, since=since, limit=1)
        for e in ctx.store.monitoring.endpoints()
    )


def _warned_recently(ctx: Context, version_id: int, now: float) -> bool:
    last = ctx.store.decisions.list(
        action="retire-warning", subject=f"version:{version_id}", limit=1
    )
    return bool(last) and now - float(last[0]["evidence"].get("clock", 0)) < DAY


def retire_pass(ctx: Context) -> list[Decided]:
    """Retire every expired or idle version of the config's model; returns the decisions."""
    deploy = ctx.cfg.deploy
    if deploy is None or (deploy.expire_after is None and deploy.idle_after is None):
        return []
    now, store = ctx.clock(), ctx.store
    roles, frozen = _serving(ctx)
    out: list[Decided] = []
    for v in store.versions.list(model=ctx.cfg.model.name):
        if v["status"] in SKIP:
            continue
        vid, where = v["id"], roles.get(v["id"], [])
        if v["expires_at"] is not None and v["expires_at"] <= now:
            why = "expired"
            reason = f"version {vid} expired (expires_at {v['expires_at']:.0f} <= now {now:.0f})"
        elif (
            deploy.idle_after is not None
            and not where
            and max(v["status_changed_at"], v["created_at"]) <= now - deploy.idle_after
            and not _seen_since(ctx, vid, now - deploy.idle_after)
        ):
            why = "idle"
            reason = (
                f"version {vid} served no traffic for {deploy.idle_after:g} s (out of every "
                "endpoint and no monitored rows since)"
            )
        else:
            continue
        evidence = {
            "why": why,
            "status": v["status"],
            "expires_at": v["expires_at"],
            "status_changed_at": v["status_changed_at"],
            "idle_after": deploy.idle_after,
            "serving": [list(x) for x in where],
        }
        if any(e in frozen for e, _ in where):
            continue
        if any(role == "champion" for _, role in where):
            if not _warned_recently(ctx, vid, now):
                out.append(
                    ctx.decide(
                        action="retire-warning",
                        subject=f"version:{vid}",
                        endpoint=where[0][0],
                        reason=f"{reason}, but it is the champion of "
                        f"{', '.join(e for e, r in where if r == 'champion')}: not retired without "
                        "a replacement; train and promote a new version",
                        evidence=evidence,
                    )
                )
            continue
        removal = store.retire(
            vid,
            actor=ctx.actor,
            reason=reason,
            evidence={**evidence, "controller": ctx.holder, "clock": now},
        )
        out.append(ctx.recorded(removal.decision_id))
        endpoint = where[0][0] if where else (deploy.endpoint)
        store.monitoring.add_alert(
            rule="retirement",
            on="retirement",
            endpoint=endpoint,
            subject=f"version:{vid}",
            severity="info",
            status="open",
            message=f"{reason}; retired"
            + (f" and removed from {', '.join(removal.endpoints)}" if removal.endpoints else ""),
            evidence=evidence,
            first_seen=now,
            last_seen=now,
        )
    return out
