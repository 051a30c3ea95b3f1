"""The controller: a reconciler that closes the loop for the config's endpoint and model.

One ``reconcile_once()`` pass, taken only by the replica that holds leadership
(``control.leader``):

1. advance every active rollout (guards first, so a breach is rolled back in the same pass);
2. retire expired and idle versions;
3. evaluate the retraining triggers of the config's endpoint and, when one is allowed, retrain
   through the same pipeline and gates as ``loopml run``; a passing candidate starts a rollout
   in shadow, a failing one counts towards the breaker.

Frozen endpoints (``loopml freeze``) get no automation at all: their rollouts are neither
advanced nor rolled back and no retraining starts. The controller acts only through the store;
the servers see its changes at their next poll of the endpoint locks. Retraining runs inside
the pass (rollouts of the endpoint wait for it; only one retraining starts per pass).
``run_forever`` is what ``loopml serve`` runs in a background thread, ``loopml control --once``
what cron runs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from loopml.config import Config
from loopml.control import rollout, triggers
from loopml.control.context import Context
from loopml.control.leader import Leadership
from loopml.control.retire import retire_pass
from loopml.control.retrain import retrain
from loopml.errors import ConflictError, NotFoundError
from loopml.store import Store
from loopml.store.outage import StoreOutage
from loopml.store.rollouts import NO_HELP

log = logging.getLogger("loopml.control")


def request_retrain(
    store: Store, endpoint: str, *, actor: str, reason: str = "", at: float | None = None
) -> dict[str, Any]:
    """Ask the controller to retrain ``endpoint`` at its next pass (``--retrain ENDPOINT``)."""
    store.endpoints.get(endpoint)  # a clear NotFoundError for a wrong name
    at = time.time() if at is None else at
    row = store.rollouts.request_retrain(
        endpoint,
        trigger="manual",
        key=f"manual:{uuid.uuid4().hex}",
        reason=reason or f"retraining requested by {actor}",
        requested_by=actor,
        at=at,
    )
    store.decisions.record(
        actor=actor,
        action="retrain-requested",
        subject=f"endpoint:{endpoint}",
        endpoint=endpoint,
        reason=row["reason"],
        evidence={"request": row["id"]},
    )
    return row


def start_rollout(
    cfg: Config,
    store: Store,
    endpoint: str,
    candidate: dict[str, Any],
    *,
    actor: str,
    evidence: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Start a guarded rollout of ``candidate`` on ``endpoint`` by hand (``loopml rollout``):
    it enters in shadow and the controller moves it on; returns the decisions written."""
    ctx = Context(cfg=cfg, store=store, clock=time.time, holder="cli", actor=actor)
    return rollout.start(ctx, endpoint, candidate, evidence=evidence)


class Controller:
    """Closes the loop for ``cfg``; see the module docstring."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        *,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg, self.store, self.clock = cfg, store, clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ctx = Context(cfg=cfg, store=store, clock=clock, holder=self.holder)
        ttl = max(300.0, 10 * cfg.serve.controller_interval)
        self.leadership = Leadership(store, self.holder, ttl=ttl)

    # ------------------------------------------------------------------ the pass
    def reconcile_once(self) -> list[dict[str, Any]]:
        """One pass; returns the decisions it recorded (empty when another controller leads)."""
        if not self.leadership.acquire():
            return []
        out: list[dict[str, Any]] = []
        if self.leadership.taken_from is not None:  # another controller stopped or was killed
            out += self._take_over(self.leadership.taken_from)
            self.leadership.taken_from = None
        for ro in self.store.rollouts.active():
            try:
                out += rollout.advance(self.ctx, ro)
            except ConflictError as e:  # changed under us: the next pass reads it afresh
                log.warning("rollout %s of %s: %s", ro["id"], ro["endpoint"], e.message)
                continue
            state = self.store.rollouts.get(ro["id"])["state"]
            if ro["retrain_id"] is not None and state in NO_HELP:
                out += self._back_off(ro["endpoint"], state, {"rollout": ro["id"]})
        out += retire_pass(self.ctx)
        if self.cfg.deploy is not None:
            self.leadership.acquire()  # renew the lease before a possibly long retraining
            out += self._retrain_if_triggered(self.cfg.deploy.endpoint)
        return out

    def _retrain_if_triggered(self, endpoint: str) -> list[dict[str, Any]]:
        ctx, store = self.ctx, self.store
        try:
            ep = store.endpoints.get(endpoint)
        except NotFoundError:
            return []  # nothing deployed yet: nothing to keep fresh
        if ep["frozen"] or ep["champion_id"] is None or store.rollouts.active(endpoint):
            return []
        champion = store.versions.get(ep["champion_id"])
        out: list[dict[str, Any]] = []
        for trig in triggers.fired(ctx, endpoint, champion):
            why = triggers.suppressed(ctx, endpoint, trig)
            if why is None:
                return out + self._run(endpoint, trig)
            kind, sentence = why
            if kind == "dedupe" or self._already_noted(endpoint, trig.key, kind):
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

    def _already_noted(self, endpoint: str, key: str, kind: str) -> bool:
        return any(
            r["status"] == "suppressed" and r["evidence"].get("suppressed") == kind
            for r in self.store.rollouts.retrains(endpoint, key=key, limit=20)
        )

    def _run(self, endpoint: str, trig: triggers.Trigger) -> list[dict[str, Any]]:
        ctx, store, now = self.ctx, self.store, self.clock()
        req = self._open_request(endpoint, trig, now)
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
            return out + self._no_candidate(endpoint, trig, req["id"], res, vid)
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
        self, endpoint: str, trig: triggers.Trigger, now: float
    ) -> dict[str, Any] | None:
        """The retraining request this trigger runs: a pending one it claims (None when another
        controller claimed it first), or a new one, started now."""
        store = self.store
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
            requested_by=self.ctx.actor,
            at=now,
            evidence=trig.evidence,
        )
        return store.rollouts.set_retrain(req["id"], started_at=now)

    def _no_candidate(
        self,
        endpoint: str,
        trig: triggers.Trigger,
        request_id: int,
        res: dict[str, Any],
        vid: int | None,
    ) -> list[dict[str, Any]]:
        """Close a retraining that produced no candidate, say why, and back off (it did not
        help) or count it towards the breaker (it failed)."""
        self.store.rollouts.set_retrain(
            request_id,
            status="done",
            outcome=res["outcome"],
            finished_at=self.clock(),
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
            self.ctx.decide(
                action=f"retrain-{res['outcome'].replace('_', '-')}",
                subject=f"endpoint:{endpoint}",
                endpoint=endpoint,
                evidence={"request": request_id, **res},
                reason=reason,
            )
        ]
        if res["outcome"] in NO_HELP:
            return out + self._back_off(endpoint, res["outcome"], {"request": request_id})
        return out + self._check_breaker(endpoint, res["outcome"])

    def _back_off(
        self, endpoint: str, outcome: str, evidence: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """A retraining that did not help: no failure (the breaker is for those), but the next
        automatic one waits longer."""
        wait, tries = triggers.cooldown(self.ctx, endpoint)
        return [
            self.ctx.decide(
                action="retrain-backoff",
                subject=f"endpoint:{endpoint}",
                endpoint=endpoint,
                reason=f"a fresh model did not help ({outcome.replace('_', ' ')}; {tries} in a "
                f"row): the next automatic retraining waits {wait:g} s after this one started",
                evidence={**evidence, "outcome": outcome, "in_a_row": tries, "cooldown": wait},
            )
        ]

    def _check_breaker(self, endpoint: str, outcome: str) -> list[dict[str, Any]]:
        if not triggers.breaker_tripped_now(self.ctx, endpoint, outcome):
            return []
        n = self.cfg.retrain.breaker
        fails = self.store.rollouts.failures_in_a_row(endpoint)
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
        now = self.clock()
        self.store.monitoring.add_alert(
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
            self.ctx.decide(
                action="breaker-open",
                subject=f"endpoint:{endpoint}",
                endpoint=endpoint,
                reason=reason,
                evidence=ev,
            )
        ]

    def _take_over(self, prev: str) -> list[dict[str, Any]]:
        """On taking over from controller ``prev`` (stopped or killed): every active rollout
        resumes from its state in the store, and a ``rollout-resumed`` decision says so. A step
        whose traffic change was made but not yet recorded in the rollout row (the controller
        died between the two) is recorded now, so the step is neither lost nor taken twice."""
        out = []
        steps = self.ctx.rollout.steps if self.cfg.deploy is not None else []
        for ro in self.store.rollouts.active():
            ep = self.store.endpoints.get(ro["endpoint"])
            state = {
                "state": ro["state"],
                "step": ro["step"],
                "canary_weight": ep.get("canary_weight"),
                "shadows": ep.get("shadows"),
            }
            repaired, after = "", state
            weight = ep.get("canary_weight")
            k = steps.index(weight) if weight in steps else -1
            if ro["state"] == "canary" and k > ro["step"]:
                after = {**state, "step": k}
                now = self.clock()
                self.store.rollouts.update(ro, at=now, step=k, step_started_at=now, judged=0)
                repaired = (
                    f"; the traffic had moved to {weight:g}% before the rollout recorded step "
                    f"{k + 1}, which is recorded now and held from this time"
                )
            reason = (
                f"controller {self.holder} took over from {prev} (stopped or killed); the "
                f"rollout resumes from its stored state {ro['state']}"
                + (f", step {ro['step'] + 1}" if ro["state"] == "canary" else "")
                + repaired
            )
            out.append(
                {
                    **self.ctx.decide(
                        action="rollout-resumed",
                        subject=f"version:{ro['candidate_id']}",
                        endpoint=ro["endpoint"],
                        reason=reason,
                        evidence={"rollout": ro["id"], "previous_controller": prev, **after},
                        before=state,
                        after=after,
                    ),
                    "rollout": ro["id"],
                }
            )
        return out

    # ------------------------------------------------------------------ running
    def run_forever(self, stop_event: threading.Event, interval: float | None = None) -> None:
        """Reconcile every ``interval`` s (default ``serve.controller_interval``) until
        ``stop_event`` is set; a failing pass is logged and the loop goes on (an unreachable
        store once per outage, ``store.outage``)."""
        every = self.cfg.serve.controller_interval if interval is None else interval
        outage = StoreOutage(
            log,
            meanwhile="the controller is paused (no reconcile passes)",
            resumed="the controller reconciles again",
            retry_seconds=every,
        )
        try:
            while not stop_event.is_set():
                started = time.monotonic()
                try:
                    for d in self.reconcile_once():
                        log.info("%s %s: %s", d["action"], d["subject"], d["reason"])
                    outage.ok()
                except Exception as exc:  # keep the loop alive: the next pass retries
                    if not outage.failed(exc):
                        log.exception("controller pass failed; retrying in %.1f s", every)
                stop_event.wait(max(0.0, every - (time.monotonic() - started)))
        finally:
            self.close()

    def close(self) -> None:
        """Give up leadership (another replica takes over at once)."""
        self.leadership.release()
