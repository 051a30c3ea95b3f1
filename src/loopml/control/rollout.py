"""The rollout state machine: shadow -> canary steps -> champion, or back to the champion.

::

    start ──► shadow ──(rollout.shadow elapsed, shadow_min_samples pairs, no breach,
                 │      shadow accuracy not worse than max_accuracy_drop)──► canary step 0
                 │                                                             │ (each step held
                 │                                                             ▼  step_duration,
                 │                                               canary step i+1 ... ≥ 1 judged
                 │                                                             │  batch, no breach)
                 ▼                                                             ▼
            rolled_back ◄──(guards.consecutive breached batches)──────── promoted (champion)
    aborted: traffic changed outside the controller (someone rolled back, disabled, promoted).

Each pass judges every full guard batch of new challenger rows since the rollout's cursor
(``control.guards``), so a breach streak that reaches ``guards.consecutive`` is rolled back in
the same pass that sees the batch, i.e. within one controller interval of the rows reaching
the log. The controller acts only through the store (``store.endpoints``); the servers pick
the change up at their next poll. Every step, breach, rollback and promotion is a decision
with its evidence.
"""

from __future__ import annotations

from typing import Any

from loopml.control import guards as G
from loopml.control.context import Context
from loopml.control.samples import (
    batch_bounds,
    compare_shadow,
    read_label_map,
    read_rows,
    role_rows,
    sample_of,
)
from loopml.errors import ConflictError

CHALLENGER_ROLE = {"shadow": ("shadow",), "canary": ("canary",)}
# A step whose accuracy cannot be judged yet (too few labelled rows) waits up to this many
# step durations for labels before moving on on the other guards alone.
LABEL_PATIENCE = 3.0


def start(
    ctx: Context,
    endpoint: str,
    candidate: dict[str, Any],
    *,
    retrain_id: int | None = None,
    evidence: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Mirror ``candidate`` as a shadow of ``endpoint`` and open its rollout."""
    now = ctx.clock()
    ep = ctx.store.endpoints.get(endpoint)
    ctx.store.endpoints.deploy(
        endpoint,
        candidate,
        actor=ctx.actor,
        shadow=True,
        reason=f"rollout of version {candidate['id']} starts in shadow",
    )
    ro = ctx.store.rollouts.start(
        endpoint=endpoint,
        candidate_id=candidate["id"],
        champion_id=ep["champion_id"],
        at=now,
        retrain_id=retrain_id,
        evidence={"start": evidence or {}, "rows": 0},
    )
    return [{**ctx.traffic_decision(endpoint, "shadow"), "rollout": ro["id"]}]


def _in_traffic(ep: dict[str, Any], ro: dict[str, Any]) -> bool:
    if ep["champion_id"] != ro["champion_id"]:
        return False
    if ro["state"] == "shadow":
        return any(s["version_id"] == ro["candidate_id"] for s in ep["shadows"])
    return ep["canary_id"] == ro["candidate_id"]


def _finish(ctx: Context, ro: dict[str, Any], state: str, reason: str, now: float) -> None:
    ctx.store.rollouts.update(ro, at=now, state=state, finished_at=now, reason=reason)
    if ro["retrain_id"] is not None:
        ctx.store.rollouts.set_retrain(ro["retrain_id"], outcome=state, finished_at=now)


def advance(ctx: Context, ro: dict[str, Any]) -> list[dict[str, Any]]:
    """One pass over one active rollout: judge new guard batches, then move it on if it may."""
    store, now, endpoint = ctx.store, ctx.clock(), ro["endpoint"]
    ep = store.endpoints.get(endpoint)
    if ep["frozen"]:
        return []
    if not _in_traffic(ep, ro):
        reason = (
            f"version {ro['candidate_id']} is no longer the {ro['state']} of {endpoint!r} "
            "(traffic was changed outside the controller): rollout stopped"
        )
        _finish(ctx, ro, "aborted", reason, now)
        return [
            ctx.decide(
                action="rollout-aborted",
                subject=f"version:{ro['candidate_id']}",
                endpoint=endpoint,
                reason=reason,
                evidence={
                    "rollout": ro["id"],
                    "traffic": {
                        k: ep[k] for k in ("champion_id", "canary_id", "canary_weight", "shadows")
                    },
                },
            )
        ]
    out: list[dict[str, Any]] = []
    rows = read_rows(ctx.root, endpoint, min(ro["started_at"], ro["cursor"]), now)
    labels = read_label_map(ctx.root, endpoint, ro["started_at"], now)
    chal_all = role_rows(rows, ro["candidate_id"], CHALLENGER_ROLE[ro["state"]])
    champ_all = role_rows(rows, ro["champion_id"], ("champion",))
    g = ctx.guards
    streak, judged, cursor = ro["breaches"], ro["judged"], ro["cursor"]
    total = int(ro["evidence"].get("rows", 0))
    last: dict[str, Any] | None = None
    for lo, hi in batch_bounds(chal_all["_ts"].to_numpy(), ro["cursor"], g.min_samples):
        chal = sample_of(chal_all[(chal_all["_ts"] >= lo) & (chal_all["_ts"] < hi)], labels)
        in_batch = champ_all[(champ_all["_ts"] >= lo) & (champ_all["_ts"] < hi)]
        if len(in_batch) < g.min_samples:  # e.g. at 100%: the champion's rows since the start
            in_batch = champ_all[champ_all["_ts"] < hi]
        champ = sample_of(in_batch, labels)
        verdict = G.judge(g, chal, champ)
        streak, cursor, total = G.next_streak(streak, verdict), hi, total + chal.n
        judged += verdict.breached is not None
        last = {
            "batch": [lo, hi],
            "verdict": verdict.to_dict(),
            "challenger": chal.summary(),
            "champion": champ.summary(),
            "streak": streak,
        }
        if verdict.breached:
            failing = [k for k, c in verdict.checks.items() if c["breached"]]
            out.append(
                ctx.decide(
                    action="guard-breach",
                    subject=f"version:{ro['candidate_id']}",
                    endpoint=endpoint,
                    reason=f"{', '.join(failing)} breached ({streak} of {g.consecutive} consecutive "
                    f"batches) in {ro['state']}",
                    evidence={"rollout": ro["id"], **last},
                )
            )
        if G.should_roll_back(g, streak):
            ev = {
                "rollout": ro["id"],
                "state": ro["state"],
                "step": ro["step"],
                "last": last,
                "consecutive": streak,
            }
            store.endpoints.rollback(
                endpoint,
                actor=ctx.actor,
                evidence=ev,
                reason=f"guards breached in {streak} consecutive batches: "
                f"version {ro['candidate_id']} rolled back",
            )
            ro = store.rollouts.update(
                ro,
                at=now,
                breaches=streak,
                judged=judged,
                cursor=cursor,
                evidence={**ro["evidence"], "rows": total, "last": last},
            )
            _finish(ctx, ro, "rolled_back", "guards breached", now)
            return [*out, {**ctx.traffic_decision(endpoint, "rollback"), "rollout": ro["id"]}]
    if last is not None:
        ro = store.rollouts.update(
            ro,
            at=now,
            breaches=streak,
            judged=judged,
            cursor=cursor,
            evidence={**ro["evidence"], "rows": total, "last": last},
        )
    if ro["state"] == "shadow":
        return out + _after_shadow(ctx, ro, rows, labels, now)
    return out + _after_step(ctx, ro, rows, labels, now)


def _after_shadow(
    ctx: Context, ro: dict[str, Any], rows: Any, labels: Any, now: float
) -> list[dict[str, Any]]:
    cfg, g, endpoint = ctx.rollout, ctx.guards, ro["endpoint"]
    if (
        now - ro["started_at"] < cfg.shadow
        or ro["evidence"].get("rows", 0) < cfg.shadow_min_samples
        or ro["breaches"] > 0
    ):
        return []
    # the bar is on pairs: a shadow row whose champion answer is not logged yet compares nothing
    cmp = compare_shadow(rows, labels, ro["candidate_id"], ro["champion_id"])
    if cmp["pairs"] < cfg.shadow_min_samples:
        return []
    acc = cmp.get("accuracy")
    if (
        g.max_accuracy_drop is not None
        and acc is not None
        and cmp["labelled"] >= g.min_samples
        and acc["improvement"] < -g.max_accuracy_drop
    ):
        ctx.store.endpoints.rollback(
            endpoint,
            actor=ctx.actor,
            evidence={"rollout": ro["id"], **cmp},
            reason=f"shadow: version {ro['candidate_id']} is "
            f"{-acc['improvement']:.3f} less accurate than the "
            f"champion on the same {cmp['labelled']} labelled requests",
        )
        _finish(ctx, ro, "rolled_back", "shadow accuracy below the champion's", now)
        return [{**ctx.traffic_decision(endpoint, "rollback"), "rollout": ro["id"]}]
    ep = ctx.store.endpoints.get(endpoint)
    weight = cfg.steps[0]
    ctx.store.endpoints.change_traffic(
        endpoint,
        actor=ctx.actor,
        action="canary",
        canary=ro["candidate_id"],
        canary_weight=weight,
        shadows=[s for s in ep["shadows"] if s["version_id"] != ro["candidate_id"]],
        evidence={"rollout": ro["id"], "shadow": cmp},
        expected_lock=ep["lock"],
        reason=f"shadow passed ({cmp['pairs']} paired requests, disagreement "
        f"{cmp.get('disagreement', 0):.3f}): version {ro['candidate_id']} takes {weight:g}% as canary",
    )
    ctx.store.rollouts.update(
        ro,
        at=now,
        state="canary",
        step=0,
        step_started_at=now,
        judged=0,
        breaches=0,
        evidence={**ro["evidence"], "shadow": cmp},
    )
    return [{**ctx.traffic_decision(endpoint, "canary"), "rollout": ro["id"]}]


def _step_accuracy(ctx: Context, ro: dict[str, Any], rows: Any, labels: Any) -> G.Verdict:
    """The accuracy guard once more, on every labelled challenger row of the step.

    A guard batch is judged as soon as its rows are in, which is usually before their labels
    arrive, so with late labels no batch ever holds enough labelled rows and the accuracy
    guard alone would never judge anything. This one look per step, when the step would move
    on, counts the labels that arrived since (one look per step, like the shadow's check)."""
    g = ctx.guards.model_copy(
        update={"max_error_rate": None, "max_p99_ms": None, "max_prediction_drift": None}
    )
    step_rows = rows[rows["_ts"] >= ro["step_started_at"]] if len(rows) else rows
    chal = sample_of(role_rows(step_rows, ro["candidate_id"], ("canary",)), labels)
    champ = sample_of(role_rows(step_rows, ro["champion_id"], ("champion",)), labels)
    if champ.labelled < g.min_samples:  # e.g. at 100%: the champion's rows since the start
        champ = sample_of(role_rows(rows, ro["champion_id"], ("champion",)), labels)
    return G.judge(g, chal, champ)


def _after_step(
    ctx: Context, ro: dict[str, Any], rows: Any, labels: Any, now: float
) -> list[dict[str, Any]]:
    cfg, endpoint, step = ctx.rollout, ro["endpoint"], ro["step"]
    if now - ro["step_started_at"] < cfg.step_duration or ro["judged"] < 1 or ro["breaches"] > 0:
        return []
    acc = _step_accuracy(ctx, ro, rows, labels)
    waited = now - ro["step_started_at"]
    if (
        ctx.guards.max_accuracy_drop is not None
        and "accuracy_drop" not in acc.checks
        and waited < LABEL_PATIENCE * cfg.step_duration
    ):
        return []  # labels are late: hold the step until accuracy can be judged (bounded)
    if acc.breached:
        ev = {
            "rollout": ro["id"],
            "state": ro["state"],
            "step": step,
            "step_accuracy": acc.to_dict(),
        }
        c = acc.checks["accuracy_drop"]
        ctx.store.endpoints.rollback(
            endpoint,
            actor=ctx.actor,
            evidence=ev,
            reason=f"step {step + 1}: version {ro['candidate_id']} is "
            f"{c['value']:.3f} less accurate than the champion on "
            f"{c['n']} labelled requests of the step: rolled back",
        )
        _finish(ctx, ro, "rolled_back", "accuracy over the step below the champion's", now)
        return [{**ctx.traffic_decision(endpoint, "rollback"), "rollout": ro["id"]}]
    ev = {
        "rollout": ro["id"],
        "step": step,
        "weight": cfg.steps[min(step, len(cfg.steps) - 1)],
        "judged_batches": ro["judged"],
        "last": ro["evidence"].get("last"),
    }
    if step + 1 >= len(cfg.steps):
        try:
            ctx.store.endpoints.promote(
                endpoint,
                ro["candidate_id"],
                actor=ctx.actor,
                evidence=ev,
                reason=f"all {len(cfg.steps)} canary steps held their guards: "
                f"version {ro['candidate_id']} promoted to champion",
            )
        except ConflictError:
            return []  # traffic changed under us; the next pass sees it and stops the rollout
        _finish(ctx, ro, "promoted", "all canary steps held", now)
        return [{**ctx.traffic_decision(endpoint, "promote"), "rollout": ro["id"]}]
    weight = cfg.steps[step + 1]
    ep = ctx.store.endpoints.get(endpoint)
    ctx.store.endpoints.change_traffic(
        endpoint,
        actor=ctx.actor,
        action="rollout-step",
        canary_weight=weight,
        evidence=ev,
        expected_lock=ep["lock"],
        reason=f"step {step + 1} held its guards for {cfg.step_duration:g} s over {ro['judged']} "
        f"batches: version {ro['candidate_id']} takes {weight:g}%",
    )
    ctx.store.rollouts.update(ro, at=now, step=step + 1, step_started_at=now, judged=0)
    return [{**ctx.traffic_decision(endpoint, "rollout-step"), "rollout": ro["id"]}]
