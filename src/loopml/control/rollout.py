"""The rollout state machine: shadow -> canary steps -> champion, or back to the champion.

::

    start ──► shadow ──(rollout.shadow elapsed, shadow_min_samples pairs, not shown worse)──►
              canary step 0 ──(step_duration held, >= 1 judged batch, not shown worse)──► ...
              last step ──(paired test shows the challenger non-inferior)──► promoted
    at any look:  paired test shows it worse by more than the margin ──► rolled_back
                  guards.consecutive breached operational batches   ──► rolled_back
    rollout.max_duration passed, still undecided                     ──► inconclusive
    traffic changed outside the controller                            ──► aborted

Quality is judged on *paired* rows (``control.judgement``): in shadow the champion answers and
the shadow is mirrored; on a canary step the champion scores the canary's rows off the
response path (role ``paired``). One confidence sequence runs over the whole rollout, shadow
and every step, and is read at every pass: anytime-valid, so these looks cost no error rate.
Operational guards (errors, latency, prediction drift; ``control.guards``) judge batches of
challenger rows with k-consecutive persistence. A rolled-back or inconclusive candidate gets
that status (never ``candidate`` again: it was tried). Every decision carries the metric, the
per-row score, the test, the interval and the rows and requests it used. Each transition's
rollout row is written in the transaction of the traffic change it goes with (``also`` of
``Endpoints.change_traffic``): a controller killed mid-pass leaves both or neither.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from loopml.config import decision_metric
from loopml.control import guards as G
from loopml.control import judgement as J
from loopml.control.context import Context, Decided
from loopml.control.rollout_memory import Look, RolloutMemory, Stale
from loopml.control.samples import batch_bounds, sample_of
from loopml.errors import ConflictError
from loopml.evaluate.measure.rowloss import NEEDS_PROBA, score_for
from loopml.logs.logtail import TailLost
from loopml.store.endpoints import Also
from loopml.store.rollouts import Rollouts
from loopml.store.rows import ACTIVE_STATES, EndpointRow, RolloutRow, RolloutState, VersionRow

CHALLENGER_ROLE = {RolloutState.SHADOW: ("shadow",), RolloutState.CANARY: ("canary",)}
# whose answers pair with the challenger's, per state: the champion's own (shadow mirrors the
# champion's requests) or its off-path answers on the canary's rows
CHAMPION_ROLE = {RolloutState.SHADOW: ("champion",), RolloutState.CANARY: ("paired",)}


def start(
    ctx: Context,
    endpoint: str,
    candidate: VersionRow,
    *,
    retrain_id: int | None = None,
    evidence: dict[str, Any] | None = None,
) -> list[Decided]:
    """Mirror ``candidate`` as a shadow of ``endpoint`` and open its rollout."""
    now = ctx.clock()
    ep = ctx.store.endpoints.get(endpoint)
    opened: list[int] = []
    changed = ctx.store.endpoints.deploy(
        endpoint,
        candidate,
        actor=ctx.actor,
        shadow=True,
        reason=f"rollout of version {candidate['id']} starts in shadow",
        also=lambda conn: opened.append(
            Rollouts.open(
                conn,
                endpoint=endpoint,
                candidate_id=candidate["id"],
                champion_id=ep["champion_id"],
                at=now,
                retrain_id=retrain_id,
                evidence={"start": evidence or {}, "rows": 0},
            )
        ),
    )
    return [{**ctx.traffic_decision(changed), "rollout": opened[0]}]


def _in_traffic(ep: EndpointRow, ro: RolloutRow) -> bool:
    if ep["champion_id"] != ro["champion_id"]:
        return False
    if ro["state"] == RolloutState.SHADOW:
        return any(s["version_id"] == ro["candidate_id"] for s in ep["shadows"])
    return ep["canary_id"] == ro["candidate_id"]


def _closing(ro: RolloutRow, state: RolloutState, reason: str, now: float) -> Also:
    """What ends ``ro`` with ``state``, written in the transaction of the traffic change that
    ends it (a controller killed between the two would leave a rollout that a later pass
    misreads as changed from outside). Its memory goes at the controller's next pass."""
    return lambda conn: Rollouts.close(conn, ro, state, reason, now)


def _moving(ro: RolloutRow, now: float, **values: Any) -> Also:
    """The rollout row's update that goes with a traffic step, in the same transaction."""
    return lambda conn: Rollouts.write(conn, ro, at=now, **values)


def _metric_and_score(
    ctx: Context, ro: RolloutRow, has_proba: bool
) -> tuple[str, str, list | None]:
    """The endpoint's decision metric and the per-row score that judges it online
    (``has_proba``: whether any row of the rollout so far logged probabilities)."""
    sig = ctx.store.versions.get(ro["candidate_id"]).get("signature") or {}
    task, classes = sig.get("task", "classification"), sig.get("classes")
    metric = decision_metric(ctx.cfg, task, len(classes) if classes else None)
    score = score_for(metric, task, ctx.guards.score)
    if score in NEEDS_PROBA and (not classes or not has_proba):
        score = "error_rate"  # the model logs no probabilities: judge its decisions instead
    return metric, score, classes


def look(ctx: Context, ro: RolloutRow, now: float) -> Look:
    """This pass's pairs and guard rows, from the rollout's memory (``ctx.memories``: only
    the log new since the last pass is read, see ``control.rollout_memory``); a memory that
    cannot serve (first pass, a new controller, a label overwriting a scored one) is built
    afresh from the whole rollout."""
    _, _, classes = _metric_and_score(ctx, ro, False)
    state = ro["state"]
    kw: dict[str, Any] = {
        "score_of": lambda has_proba: _metric_and_score(ctx, ro, has_proba)[1],
        "classes": classes,
        "roles": CHALLENGER_ROLE[state],
        "champion_roles": CHAMPION_ROLE[state],
        "cursor": ro["cursor"],
    }
    memory = ctx.memories.get(ro["id"])
    if memory is not None:
        try:
            return memory.look(now, **kw)
        except (Stale, TailLost):
            pass
    memory = ctx.memories[ro["id"]] = RolloutMemory(ctx.root, ro, ctx.pair_wait)
    return memory.look(now, **kw)


def judge_quality(ctx: Context, ro: RolloutRow, pairs: J.Pairs, has_proba: bool) -> J.Quality:
    """The paired test at this look, over every labelled pair since the rollout started."""
    metric, score, _ = _metric_and_score(ctx, ro, has_proba)
    q = J.judge(ctx.guards, pairs, metric=metric, score=score)
    q.evidence["rollout"] = ro["id"]
    if score != score_for(metric, "classification", ctx.guards.score) and score == "error_rate":
        q.evidence["note"] = "no probabilities are logged: the error rate stands for " + metric
    return q


def _end(
    ctx: Context,
    ro: RolloutRow,
    outcome: RolloutState,
    reason: str,
    evidence: dict[str, Any],
    now: float,
) -> list[Decided]:
    """Take the candidate out of traffic with ``outcome`` as its status (rolled_back,
    inconclusive), and close the rollout."""
    endpoint = ro["endpoint"]
    action = "rollback" if outcome == RolloutState.ROLLED_BACK else "rollout-inconclusive"
    changed = ctx.store.endpoints.withdraw(
        endpoint,
        ro["candidate_id"],
        actor=ctx.actor,
        evidence={
            "rollout": ro["id"],
            "state": ro["state"],
            "step": ro["step"],
            **evidence,
            "controller": ctx.holder,
        },
        reason=reason,
        status=outcome,
        action=action,
        also=_closing(ro, outcome, reason, now),
    )
    return [{**ctx.traffic_decision(changed), "rollout": ro["id"]}]


def advance(ctx: Context, ro: RolloutRow) -> list[Decided]:
    """One pass over one active rollout; see the module docstring."""
    store, now, endpoint = ctx.store, ctx.clock(), ro["endpoint"]
    ep = store.endpoints.get(endpoint)
    if ep["frozen"]:
        return []
    if not _in_traffic(ep, ro):
        reason = (
            f"version {ro['candidate_id']} is no longer the {ro['state']} of {endpoint!r} "
            "(traffic was changed outside the controller): rollout stopped"
        )
        ctx.store.rollouts.finish(ro, RolloutState.ABORTED, reason, now)
        traffic = {k: ep[k] for k in ("champion_id", "canary_id", "canary_weight", "shadows")}
        return [
            ctx.decide(
                action="rollout-aborted",
                subject=f"version:{ro['candidate_id']}",
                endpoint=endpoint,
                reason=reason,
                evidence={"rollout": ro["id"], "traffic": traffic},
            )
        ]
    seen = look(ctx, ro, now)
    quality = judge_quality(ctx, ro, seen.pairs, seen.has_proba)
    cand = ro["candidate_id"]
    if quality.outcome == "worse":
        return _end(
            ctx,
            ro,
            RolloutState.ROLLED_BACK,
            f"{ro['state']}: version {cand} is worse than the champion on the same rows by more "
            f"than the margin ({J.describe(quality)}): rolled back",
            {"quality": quality.evidence},
            now,
        )
    out, ro = _operational(ctx, ro, seen.challenger, seen.champion, quality, now)
    if ro["state"] not in ACTIVE_STATES:
        return out
    if ro["evidence"].get("quality") != quality.evidence:  # what the dashboard shows meanwhile
        ro = ctx.store.rollouts.update(
            ro, at=now, evidence={**ro["evidence"], "quality": quality.evidence}
        )
    if now - ro["started_at"] >= ctx.rollout.deadline:
        return out + _end(
            ctx,
            ro,
            RolloutState.INCONCLUSIVE,
            f"no verdict within {ctx.rollout.deadline:g} s ({J.describe(quality)}): "
            f"version {cand} leaves traffic as inconclusive and the champion stays",
            {"quality": quality.evidence},
            now,
        )
    if ro["state"] == RolloutState.SHADOW:
        return out + _after_shadow(ctx, ro, quality, now)
    return out + _after_step(ctx, ro, quality, now)


def _operational(
    ctx: Context,
    ro: RolloutRow,
    chal_all: pd.DataFrame,
    champ_all: pd.DataFrame,
    quality: J.Quality,
    now: float,
) -> tuple[list[Decided], RolloutRow]:
    """Judge every full batch of new challenger rows (``chal_all``: the current role's from
    the cursor on; ``champ_all``: the champion's rows with their request ids) on the
    operational guards; roll back after ``guards.consecutive`` breached batches. Returns
    the decisions and the rollout."""
    g, endpoint = ctx.guards, ro["endpoint"]
    streak, judged, cursor = ro["breaches"], ro["judged"], ro["cursor"]
    total = int(ro["evidence"].get("rows", 0))
    last: dict[str, Any] | None = None
    out: list[Decided] = []
    shown = quality.outcome == "non_inferior"
    no_labels = pd.Series(dtype=object)  # quality is the paired test's; batches need none
    for lo, hi in batch_bounds(chal_all["_ts"].to_numpy(), ro["cursor"], g.min_samples):
        batch = chal_all[(chal_all["_ts"] >= lo) & (chal_all["_ts"] < hi)]
        chal = sample_of(batch, no_labels)
        same = champ_all[champ_all["_request_id"].isin(batch["_request_id"])]
        verdict = G.judge(g, chal, sample_of(same, no_labels), quality_shown=shown)
        streak, cursor, total = G.next_streak(streak, verdict), hi, total + chal.n
        judged += verdict.breached is not None
        last = {"batch": [lo, hi], "verdict": verdict.to_dict(), "streak": streak}
        if verdict.breached:
            failing = [k for k, c in verdict.checks.items() if c["breached"]]
            out.append(
                ctx.decide(
                    action="guard-breach",
                    subject=f"version:{ro['candidate_id']}",
                    endpoint=endpoint,
                    reason=f"{', '.join(failing)} breached ({streak} of {g.consecutive} "
                    f"consecutive batches) in {ro['state']}",
                    evidence={"rollout": ro["id"], **last},
                )
            )
        if G.should_roll_back(g, streak):
            failing = [k for k, c in verdict.checks.items() if c["breached"]]
            ro = _save_batches(ctx, ro, now, streak, judged, cursor, total, last)
            ended = _end(
                ctx,
                ro,
                RolloutState.ROLLED_BACK,
                f"{', '.join(failing)} breached in {streak} consecutive batches: "
                f"version {ro['candidate_id']} rolled back",
                {"last": last, "consecutive": streak, "quality": quality.evidence},
                now,
            )
            return out + ended, {**ro, "state": RolloutState.ROLLED_BACK}
    if last is not None:
        ro = _save_batches(ctx, ro, now, streak, judged, cursor, total, last)
    return out, ro


def _save_batches(
    ctx: Context,
    ro: RolloutRow,
    now: float,
    streak: int,
    judged: int,
    cursor: float,
    total: int,
    last: dict[str, Any],
) -> RolloutRow:
    """Record the guard batches judged in this pass: the breach streak, the judged batches of
    the step, the log time judged up to, the challenger rows seen and the last verdict."""
    return ctx.store.rollouts.update(
        ro,
        at=now,
        breaches=streak,
        judged=judged,
        cursor=cursor,
        evidence={**ro["evidence"], "rows": total, "last": last},
    )


def _after_shadow(ctx: Context, ro: RolloutRow, quality: J.Quality, now: float) -> list[Decided]:
    cfg, endpoint = ctx.rollout, ro["endpoint"]
    paired = quality.evidence.get("paired_rows", 0)
    if now - ro["started_at"] < cfg.shadow or paired < cfg.shadow_min_samples or ro["breaches"]:
        return []
    ep = ctx.store.endpoints.get(endpoint)
    weight = cfg.steps[0]
    changed = ctx.store.endpoints.change_traffic(
        endpoint,
        actor=ctx.actor,
        action="canary",
        canary=ro["candidate_id"],
        canary_weight=weight,
        shadows=[s for s in ep["shadows"] if s["version_id"] != ro["candidate_id"]],
        evidence={"rollout": ro["id"], "quality": quality.evidence, "controller": ctx.holder},
        expected_lock=ep["lock"],
        reason=f"shadow held ({paired} paired rows; {J.describe(quality)}): "
        f"version {ro['candidate_id']} takes {weight:g}% as canary",
        also=_moving(
            ro,
            now,
            state=RolloutState.CANARY,
            step=0,
            step_started_at=now,
            cursor=now,
            judged=0,
            breaches=0,
            evidence={**ro["evidence"], "shadow": quality.evidence},
        ),
    )
    return [{**ctx.traffic_decision(changed), "rollout": ro["id"]}]


def _after_step(ctx: Context, ro: RolloutRow, quality: J.Quality, now: float) -> list[Decided]:
    cfg, endpoint, step = ctx.rollout, ro["endpoint"], ro["step"]
    if now - ro["step_started_at"] < cfg.step_duration or ro["judged"] < 1 or ro["breaches"]:
        return []
    ev = {
        "rollout": ro["id"],
        "step": step,
        "weight": cfg.steps[min(step, len(cfg.steps) - 1)],
        "judged_batches": ro["judged"],
        "last": ro["evidence"].get("last"),
        "quality": quality.evidence,
        "controller": ctx.holder,  # which replica moved the traffic
    }
    if step + 1 < len(cfg.steps):
        weight = cfg.steps[step + 1]
        ep = ctx.store.endpoints.get(endpoint)
        changed = ctx.store.endpoints.change_traffic(
            endpoint,
            actor=ctx.actor,
            action="rollout-step",
            canary_weight=weight,
            evidence=ev,
            expected_lock=ep["lock"],
            reason=f"step {step + 1} held its guards for {cfg.step_duration:g} s "
            f"({J.describe(quality)}): version {ro['candidate_id']} takes {weight:g}%",
            also=_moving(ro, now, step=step + 1, step_started_at=now, judged=0),
        )
        return [{**ctx.traffic_decision(changed), "rollout": ro["id"]}]
    no_labels = quality.evidence.get("rows", 0) == 0
    if quality.outcome != "non_inferior" and not (no_labels and ctx.guards.promote_without_labels):
        return []  # the last step waits for the test (or the deadline)
    why = (
        f"the paired test shows it non-inferior ({J.describe(quality)})"
        if quality.outcome == "non_inferior"
        else "no labels arrived and guards.promote_without_labels is on"
    )
    try:
        changed = ctx.store.endpoints.promote(
            endpoint,
            ro["candidate_id"],
            actor=ctx.actor,
            evidence=ev,
            reason=f"all {len(cfg.steps)} canary steps held and {why}: "
            f"version {ro['candidate_id']} promoted to champion",
            also=_closing(ro, RolloutState.PROMOTED, why, now),
        )
    except ConflictError:
        return []  # traffic changed under us; the next pass sees it and stops the rollout
    return [{**ctx.traffic_decision(changed), "rollout": ro["id"]}]
