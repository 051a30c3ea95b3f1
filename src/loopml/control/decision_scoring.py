"""Every rollout decision of a backtest scored offline (``control.timeline`` lists them).

A decision carries what it judged (``JUDGED``: the per-row score, the margin, the interval,
the rows' span ...; under ``quality`` as the controller records it). ``score_decision``
re-runs both models offline on the exact challenger rows of that span that were labelled by
the time of the decision and scores them with the true labels: ``offline_paired_delta`` is
challenger minus champion mean per-row loss, and a rollback whose delta is not worse than its
margin is a ``false_rollback``. Decisions older than issue 11 lack ``span`` / ``score`` /
``margin``; the defaults are described in ``control.timeline``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loopml.config import Config
from loopml.control.simserve import SimServing
from loopml.errors import NotFoundError
from loopml.store import Store

SLACK = 1e-6  # the log keeps microseconds: a span's ends compare within one


def row_loss(
    score: str, y: np.ndarray, pred: np.ndarray, proba: Any, classes: Any
) -> np.ndarray | None:
    """Per-row loss named by a rollout decision's ``score`` (``loopml.evaluate.measure.rowloss``, the
    same code the controller judged with); None when it cannot be computed from these
    outputs (e.g. a probability score for a model without probabilities)."""
    from loopml.evaluate.measure.rowloss import NEEDS_PROBA
    from loopml.evaluate.measure.rowloss import row_loss as loss

    score = "error_rate" if score == "accuracy" else score
    if score in NEEDS_PROBA and (proba is None or classes is None):
        return None
    out = loss(score, y, pred, None if proba is None else list(np.asarray(proba)), classes)
    return None if score in NEEDS_PROBA and not np.isfinite(out).all() else out


# what a rollout decision says it judged (issue 11): the per-row score, the margin, the
# interval of challenger minus champion loss, the rows' prediction times, rows and requests
JUDGED = ("metric", "score", "margin", "interval", "estimate", "span", "rows", "requests", "test")


def judged_evidence(ev: dict[str, Any]) -> dict[str, Any]:
    """The judgement's keys of a decision's evidence: under ``quality`` (the paired test's
    evidence, as the controller records it), else at the top level."""
    q = ev.get("quality")
    inner = q if isinstance(q, dict) else {}
    return {k: inner[k] if k in inner else ev.get(k) for k in JUDGED}


def score_decision(
    cfg: Config,
    store: Store,
    server: SimServing,
    d: dict[str, Any],
    y: np.ndarray,
    task: str,
    classes: Any,
) -> dict[str, Any]:
    """One rollout decision (``id``, ``at``, ``action``, ``evidence`` ...), with its evidence
    and the offline paired delta on the rows it judged (see the module docstring)."""
    ev = d["evidence"] or {}
    judged = judged_evidence(ev)
    out: dict[str, Any] = {
        "decision": d["id"],
        "action": d["action"],
        "at": d["at"],
        "history_time": d["history_time"],
        "reason": d["reason"],
        "rollout": ev.get("rollout"),
        **{k: judged.get(k) for k in JUDGED},
    }
    if d["action"] == "rollback":
        out["false_rollback"] = None  # unknown until the rows are scored below
    ro = None
    if ev.get("rollout") is not None:
        try:
            ro = store.rollouts.get(int(ev["rollout"]))
        except (NotFoundError, ValueError, TypeError):
            ro = None
    if ro is None:
        out["offline_paired_delta"] = None
        out["note"] = "the decision names no rollout: nothing to score offline"
        return out
    out["candidate"], out["champion"] = ro["candidate_id"], ro["champion_id"]
    score = judged.get("score") or ("squared_error" if task == "regression" else "error_rate")
    margin = judged.get("margin")
    if margin is None:
        margin = cfg.deploy.rollout.guards.max_accuracy_drop or 0.0  # type: ignore[union-attr]
    span = judged.get("span")
    if not (isinstance(span, list | tuple) and len(span) == 2):
        state = ev.get("state") or ("shadow" if "shadow" in str(ev) else "canary")
        t0 = ro["started_at"] if state == "shadow" else ro.get("step_started_at")
        span = [t0 if t0 is not None else ro["started_at"], d["at"]]
    t0, t1 = float(span[0]), float(span[1])
    labelled_by = d["at"] - server.label_delay
    picked = [
        s
        for s in server.served
        if s.version == ro["candidate_id"]
        and s.role in ("shadow", "canary")
        and t0 - SLACK <= s.ts <= t1 + SLACK
        and s.ts <= labelled_by + SLACK
    ]
    out.update(score_used=score, margin_used=margin, span_used=[t0, t1])
    if not picked or ro["champion_id"] is None:
        out["offline_paired_delta"] = None
        out["note"] = "no labelled challenger rows in the decision's span"
        return out
    rows = np.concatenate([s.rows for s in picked])
    yc = y[rows]
    pc, qc = server.predict_rows(ro["candidate_id"], rows)
    pp, qp = server.predict_rows(ro["champion_id"], rows)
    lc, lp = row_loss(score, yc, pc, qc, classes), row_loss(score, yc, pp, qp, classes)
    if lc is None or lp is None:
        out["offline_paired_delta"] = None
        out["note"] = f"score {score!r} cannot be computed from these models' outputs"
        return out
    delta = float(np.mean(lc - lp))
    out.update(
        offline_paired_delta=delta,
        offline_rows=len(rows),
        offline_requests=len({s.request for s in picked}),
        offline_challenger_loss=float(lc.mean()),
        offline_champion_loss=float(lp.mean()),
    )
    if d["action"] == "rollback":
        out["false_rollback"] = bool(delta <= margin)
    return out
