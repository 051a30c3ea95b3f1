"""The controller's retraining step for one endpoint: the triggers that fired, why one is
suppressed (dedupe, cooldown, budget, breaker; each reason noted once), and the retraining
itself through the same pipeline and gates as ``loopml run``. A passing candidate starts a
rollout in shadow; one that is not better backs the cooldown off; one that fails counts
towards the breaker, which opens a critical alert. ``Controller.reconcile_once`` calls
``retrain_pass`` after the rollouts and retirement of the pass.
"""

from __future__ import annotations

from typing import Any

from loopml.control import rollout, triggers
from loopml.control.context import Context, Decided
from loopml.control.retrain import retrain
from loopml.errors import NotFoundError
from loopml.store.rollouts import NO_HELP
from loopml.store.rows import RetrainRow


def retrain_pass(ctx: Context, endpoint: str) -> list[Decided]:
    """Retrain ``endpoint`` if a trigger fired and nothing suppresses it; returns the decisions
    (suppressions are noted once per trigger key and reason)."""
    store = ctx.store
    try:
        ep = store.endpoints.get(endpoint)
    except NotFoundError:
        return []  # nothing deployed yet: nothing to keep fresh
    if ep["frozen"] or ep["champion_id"] is None or store.rollouts.active(endpoint):
        return []
    champion = store.versions.get(ep["champion_id"])
    out: list[Decided] = []
    for trig in triggers.fired(ctx, endpoint, champion):
        why = triggers.suppressed(ctx, endpoint, trig)
        if why is None:
            return out + _run(ctx, endpoint, trig)
        kind, sentence = why
        if kind == "dedupe" or _already_noted(ctx, endpoint, trig.key, kind):
            continue
        store.rollouts.request_retrain(
            endpoint,
            trigger=trig.name,
            key=trig.key,
            status="suppressed",
            reason=sentence,
            requested_by=ctx.actor,
            at=ctx.clock(),
            evidence={"suppressed": kind, **trig.evidence},
        )
        out.append(
            ctx.decide(
                action="trigger-suppressed",
                subject=f"endpoint:{endpoint}",
                endpoint=endpoint,
                reason=f"{trig.name} trigger fired ({trig.reason}) "
                f"but did not start a retraining: {sentence}",
                evidence={
                    "trigger": trig.name,
                    "key": trig.key,
                    "suppressed": kind,
                    **trig.evidence,
                },
            )
        )
    return out


def _already_noted(ctx: Context, endpoint: str, key: str, kind: str) -> bool:
    return any(
        r["status"] == "suppressed" and r["evidence"].get("suppressed") == kind
        for r in ctx.store.rollouts.retrains(endpoint, key=key, limit=20)
    )


def _run(ctx: Context, endpoint: str, trig: triggers.Trigger) -> list[Decided]:
    store, now = ctx.store, ctx.clock()
    req = _open_request(ctx, endpoint, trig, now)
    if req is None:
        return []
    out = [
        ctx.decide(
            action="retrain",
            subject=f"endpoint:{endpoint}",
            endpoint=endpoint,
            reason=f"{trig.name} trigger: {trig.reason}",
            evidence={
                "trigger": trig.name,
                "key": trig.key,
                "request": req["id"],
                **trig.evidence,
            },
        )
    ]
    res = retrain(ctx, endpoint, trig.name, now=now)
    version = res.pop("version", None)
    vid = version["id"] if version else None
    if res["outcome"] != "passed":
        return out + _no_candidate(ctx, endpoint, trig, req["id"], res, vid)
    store.rollouts.set_retrain(
        req["id"], status="done", outcome="rollout", run_id=res["run"], version_id=vid
    )
    out.append(
        ctx.decide(
            action="retrain-passed",
            subject=f"version:{vid}",
            endpoint=endpoint,
            reason=f"retraining ({trig.name}) produced candidate version {vid}, "
            "which passed its gates",
            evidence={"request": req["id"], **res},
        )
    )
    return out + rollout.start(
        ctx,
        endpoint,
        version,
        retrain_id=req["id"],
        evidence={"trigger": trig.name, "run": res["run"]},
    )


def _open_request(
    ctx: Context, endpoint: str, trig: triggers.Trigger, now: float
) -> RetrainRow | None:
    """The retraining request this trigger runs: a pending one it claims (None when another
    controller claimed it first), or a new one, started now."""
    store = ctx.store
    if trig.request_id is not None:
        if not store.rollouts.claim_retrain(trig.request_id, at=now):
            return None
        return store.rollouts.retrain(trig.request_id)
    req = store.rollouts.request_retrain(
        endpoint,
        trigger=trig.name,
        key=trig.key,
        status="running",
        reason=trig.reason,
        requested_by=ctx.actor,
        at=now,
        evidence=trig.evidence,
    )
    return store.rollouts.set_retrain(req["id"], started_at=now)


def _no_candidate(
    ctx: Context,
    endpoint: str,
    trig: triggers.Trigger,
    request_id: int,
    res: dict[str, Any],
    vid: int | None,
) -> list[Decided]:
    """Close a retraining that produced no candidate, say why, and back off (it did not
    help) or count it towards the breaker (it failed)."""
    ctx.store.rollouts.set_retrain(
        request_id,
        status="done",
        outcome=res["outcome"],
        finished_at=ctx.clock(),
        run_id=res.get("run"),
        version_id=vid,
    )
    if res["outcome"] == "not_better":
        champ: dict[str, Any] = next((g for g in res["gates"] if g["gate"] == "champion"), {})
        reason = (
            f"retraining ({trig.name}): a fresh model does not help on recent data: "
            f"version {vid} is not better than the champion ({champ.get('message', '')})"
        )
    else:
        reason = f"retraining ({trig.name}) produced no candidate: " + (
            res.get("error") or f"version {vid} failed its gates"
        )
    out = [
        ctx.decide(
            action=f"retrain-{res['outcome'].replace('_', '-')}",
            subject=f"endpoint:{endpoint}",
            endpoint=endpoint,
            evidence={"request": request_id, **res},
            reason=reason,
        )
    ]
    if res["outcome"] in NO_HELP:
        return out + back_off(ctx, endpoint, res["outcome"], {"request": request_id})
    return out + _check_breaker(ctx, endpoint, res["outcome"])


def back_off(ctx: Context, endpoint: str, outcome: str, evidence: dict[str, Any]) -> list[Decided]:
    """A retraining that did not help: no failure (the breaker is for those), but the next
    automatic one waits longer."""
    wait, tries = triggers.cooldown(ctx, endpoint)
    return [
        ctx.decide(
            action="retrain-backoff",
            subject=f"endpoint:{endpoint}",
            endpoint=endpoint,
            reason=f"a fresh model did not help ({outcome.replace('_', ' ')}; {tries} in a "
            f"row): the next automatic retraining waits {wait:g} s after this one started",
            evidence={**evidence, "outcome": outcome, "in_a_row": tries, "cooldown": wait},
        )
    ]


def _check_breaker(ctx: Context, endpoint: str, outcome: str) -> list[Decided]:
    if not triggers.breaker_tripped_now(ctx, endpoint, outcome):
        return []
    n = ctx.cfg.retrain.breaker
    fails = ctx.store.rollouts.failures_in_a_row(endpoint)
    reason = (
        f"breaker open: {n} retrainings in a row failed (errors, or gates other than the "
        "champion comparison); automatic retraining of this endpoint stops until a manual "
        "retrain is promoted"
    )
    ev = {
        "failures": [
            {
                "request": f["id"],
                "trigger": f["trigger"],
                "outcome": f["outcome"],
                "version": f["version_id"],
            }
            for f in fails
        ]
    }
    now = ctx.clock()
    ctx.store.monitoring.add_alert(
        rule="retrain-breaker",
        on="retrain",
        endpoint=endpoint,
        subject=f"endpoint:{endpoint}",
        severity="critical",
        status="open",
        message=reason,
        evidence=ev,
        first_seen=now,
        last_seen=now,
    )
    return [
        ctx.decide(
            action="breaker-open",
            subject=f"endpoint:{endpoint}",
            endpoint=endpoint,
            reason=reason,
            evidence=ev,
        )
    ]
