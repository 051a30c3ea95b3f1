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
``run_forever`` is what ``loopml serve`` runs (in its background process,
``loopml.background_worker``, or with ``serve.background: thread`` in a thread of the server),
``loopml control --once`` what cron runs.
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
from loopml.control import rollout
from loopml.control.context import Context, Decided
from loopml.control.leader import Leadership
from loopml.control.retire import retire_pass
from loopml.control.retrain_pass import back_off, retrain_pass
from loopml.errors import ConflictError
from loopml.store import Store
from loopml.store.outage import StoreOutage
from loopml.store.rollouts import NO_HELP
from loopml.store.rows import RetrainRow, RolloutState, VersionRow

log = logging.getLogger("loopml.control")


def request_retrain(
    store: Store, endpoint: str, *, actor: str, reason: str = "", at: float | None = None
) -> RetrainRow:
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
    candidate: VersionRow,
    *,
    actor: str,
    evidence: dict[str, Any] | None = None,
) -> list[Decided]:
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
    def reconcile_once(self) -> list[Decided]:
        """One pass; returns the decisions it recorded (empty when another controller leads)."""
        if not self.leadership.acquire():
            self.ctx.memories.clear()  # the leader keeps them; a new leader reads afresh
            return []
        out: list[Decided] = []
        if self.leadership.taken_from is not None:  # another controller stopped or was killed
            out += self._take_over(self.leadership.taken_from)
            self.leadership.taken_from = None
        active = self.store.rollouts.active()
        for gone in self.ctx.memories.keys() - {ro["id"] for ro in active}:
            del self.ctx.memories[gone]  # ended: by a pass, another controller or by hand
        for ro in active:
            try:
                out += rollout.advance(self.ctx, ro)
            except ConflictError as e:  # changed under us: the next pass reads it afresh
                log.warning("rollout %s of %s: %s", ro["id"], ro["endpoint"], e.message)
                continue
            state = self.store.rollouts.get(ro["id"])["state"]
            if ro["retrain_id"] is not None and state in NO_HELP:
                out += back_off(self.ctx, ro["endpoint"], state, {"rollout": ro["id"]})
        out += retire_pass(self.ctx)
        if self.cfg.deploy is not None:
            self.leadership.acquire()  # renew the lease, and keep it while a retraining runs
            with self.leadership.kept():
                out += retrain_pass(self.ctx, self.cfg.deploy.endpoint)
        return out

    def _take_over(self, prev: str) -> list[Decided]:
        """On taking over from controller ``prev`` (stopped or killed): every active rollout
        resumes from its state in the store, and a ``rollout-resumed`` decision says so. Each
        rollout transition is written in the transaction of its traffic change
        (``control.rollout``), so a controller killed mid-pass leaves either both or neither:
        the stored state is the whole truth, and no step is lost or taken twice."""
        out: list[Decided] = []
        for ro in self.store.rollouts.active():
            ep = self.store.endpoints.get(ro["endpoint"])
            state = {
                "state": ro["state"],
                "step": ro["step"],
                "canary_weight": ep.get("canary_weight"),
                "shadows": ep.get("shadows"),
            }
            reason = (
                f"controller {self.holder} took over from {prev} (stopped or killed); the "
                f"rollout resumes from its stored state {ro['state']}"
                + (f", step {ro['step'] + 1}" if ro["state"] == RolloutState.CANARY else "")
            )
            out.append(
                {
                    **self.ctx.decide(
                        action="rollout-resumed",
                        subject=f"version:{ro['candidate_id']}",
                        endpoint=ro["endpoint"],
                        reason=reason,
                        evidence={"rollout": ro["id"], "previous_controller": prev, **state},
                    ),
                    "rollout": ro["id"],
                }
            )
        return out + [self._interrupted(req, prev) for req in self.store.rollouts.running()]

    def _interrupted(self, req: RetrainRow, prev: str) -> Decided:
        """A retraining that controller ``prev`` was running when it died: a manual request
        is queued again (someone asked for it); an automatic one ends as ``interrupted``
        (neither a failure for the breaker nor a "did not help" for the cooldown), and its
        trigger fires again on new evidence."""
        now, endpoint = self.clock(), req["endpoint"]
        if req["trigger"] == "manual":
            self.store.rollouts.set_retrain(req["id"], status="pending", started_at=None)
            then = "the manual request is queued again and runs on the next retraining pass"
        else:
            self.store.rollouts.set_retrain(
                req["id"], status="done", outcome="interrupted", finished_at=now
            )
            then = (
                f"it ends as interrupted; the {req['trigger']} trigger fires again on new "
                "evidence, after the cooldown"
            )
        return self.ctx.decide(
            action="retrain-interrupted",
            subject=f"endpoint:{endpoint}",
            endpoint=endpoint,
            reason=f"controller {prev} stopped (or was killed) during retraining request "
            f"{req['id']} ({req['trigger']} trigger), which nothing will finish: {then}",
            evidence={"request": req["id"], "trigger": req["trigger"], "previous_controller": prev},
        )

    # ------------------------------------------------------------------ running
    def run_forever(
        self,
        stop_event: threading.Event,
        interval: float | None = None,
        after: Callable[[], None] | None = None,
    ) -> None:
        """Reconcile every ``interval`` s (default ``serve.controller_interval``) until
        ``stop_event`` is set; a failing pass is logged and the loop goes on (an unreachable
        store once per outage, ``store.outage``). ``after`` runs after each pass (the
        background process gives memory back there)."""
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
                if after is not None:
                    after()
                stop_event.wait(max(0.0, every - (time.monotonic() - started)))
        finally:
            self.close()

    def close(self) -> None:
        """Give up leadership (another replica takes over at once)."""
        self.leadership.release()
