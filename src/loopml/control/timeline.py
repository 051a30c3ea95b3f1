"""What a backtest reports: the timeline per monitor window, and every decision scored offline.

- ``windows``: one per monitor window of virtual time (aligned as the monitor aligns them)
  that served rows: the champion of the window, the live metric of the answers users got
  (champion and canary answers against the true labels), ``metric_no_retrain`` (the first
  champion's answers on the same rows: what the policy "never retrain" would have scored),
  the monitor's own number for the champion when it computed one, and the decisions taken
  in the window. Windows with fewer than ``monitor.min_window_rows`` rows are not scored
  (``too_few_rows``), as the monitor does not score them.
- ``rollbacks`` (and ``promotions``, ``inconclusive``): each rollout decision with the
  evidence it named (``score``, ``margin``, ``interval``, ``estimate``, ``span``, ``rows``,
  ``requests``: the paired test's evidence, which the controller records under ``quality``)
  and ``offline_paired_delta``: challenger minus
  champion mean per-row loss on the exact rows of that decision (the challenger's shadow or
  canary rows predicted in the decision's span, labelled by the time of the decision), both
  models re-run offline on those rows and scored with the true labels. A rollback is a
  ``false_rollback`` when that delta is not worse than the decision's margin.

When a decision does not carry ``span`` / ``score`` / ``margin`` (rollout code older than
issue 11), the span is the rollout's current phase (shadow start, or the canary step's
start) up to the decision, the score ``error_rate`` (``squared_error`` for a regression) and
the margin ``guards.max_accuracy_drop``.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from loopml.config import Config
from loopml.control.decision_scoring import score_decision
from loopml.control.simserve import SimServing
from loopml.store import Store

ANSWERS = ("champion", "canary")  # roles whose answer the caller got
ROLLOUT_ACTIONS = {"promote": "promotions", "rollback": "rollbacks"}


def rollout_kind(action: str) -> str | None:
    """Which list of the result a controller decision belongs to: ``promotions``,
    ``rollbacks``, ``inconclusive``, or None (a version's status change is not a decision
    of its own: it comes with the traffic decision that caused it)."""
    if action.startswith("status:"):
        return None
    if action in ROLLOUT_ACTIONS:
        return ROLLOUT_ACTIONS[action]
    return "inconclusive" if "inconclusive" in action else None


def iso_z(t: float) -> str:
    """A UNIX time as ISO-8601 UTC to the second, with a ``Z`` (the backtest's JSON)."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _iso(t: float | None) -> str | None:
    return None if t is None else iso_z(t)


def same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Prediction == label, numbers as numbers (1 == 1.0) and anything else as text."""
    x, y = (
        pd.to_numeric(pd.Series(a), errors="coerce"),
        pd.to_numeric(pd.Series(b), errors="coerce"),
    )
    if x.notna().all() and y.notna().all():
        return x.to_numpy(dtype=float) == y.to_numpy(dtype=float)
    return pd.Series(a).astype(str).to_numpy() == pd.Series(b).astype(str).to_numpy()


def window_metric(
    name: str, task: str, y: np.ndarray, pred: np.ndarray, proba: Any, classes: Any
) -> float | None:
    """The monitor's metric ``name`` on one window's rows (accuracy, r2, ... as the monitor
    computes them, through ``loopml.evaluate.measure.metrics``)."""
    if not len(y):
        return None
    if name == "accuracy":
        return float(same(pred, y).mean())
    from loopml.evaluate.measure.metrics import classification_metrics, regression_metrics

    try:
        if task == "regression":
            out = regression_metrics(y.astype(float), pred.astype(float))
        else:
            out = classification_metrics(y, pred, proba, classes)
    except (ValueError, TypeError):
        return None
    v = out.get(name)
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


class Answers:
    """Per row of the history: who answered it (champion or canary) and with what."""

    def __init__(self, server: SimServing, n: int) -> None:
        self.version = np.full(n, -1, dtype=np.int64)
        self.role = np.full(n, "", dtype=object)
        self.pred = np.full(n, None, dtype=object)
        self.proba: np.ndarray | None = None
        self.t = np.full(n, np.nan)
        for s in server.served:
            if s.role not in ANSWERS:
                continue
            self.version[s.rows] = s.version
            self.role[s.rows] = s.role
            self.pred[s.rows] = np.asarray(s.predictions, dtype=object)
            self.t[s.rows] = s.ts
            if s.probabilities is not None:
                p = np.asarray(s.probabilities, dtype=float)
                if self.proba is None:
                    self.proba = np.full((n, p.shape[1]), np.nan)
                if p.shape[1] == self.proba.shape[1]:
                    self.proba[s.rows] = p

    def of_version(self, server: SimServing, version: int) -> tuple[np.ndarray, Any]:
        """What ``version`` answers on every served row: its logged answers where it
        answered, the rest predicted offline (e.g. the first champion after its retirement)."""
        pred = self.pred.copy()
        proba = None if self.proba is None else self.proba.copy()
        other = np.flatnonzero((self.version >= 0) & (self.version != version))
        if len(other):
            p, q = server.predict_rows(version, other)
            pred[other] = np.asarray(p, dtype=object)
            if proba is not None and q is not None:
                proba[other] = q
        return pred, proba


def build_result(
    *,
    cfg: Config,
    store: Store,
    server: SimServing,
    y: np.ndarray,
    first_id: int,
    decided_at: dict[int, float],
    clock: Any,
    info: dict[str, Any],
    t_wall: float,
) -> dict[str, Any]:
    """The backtest's answer: ``windows``, ``retrains``, ``promotions``, ``inconclusive``,
    ``rollbacks``, ``decisions`` and a ``summary`` (see the module docstring)."""
    from loopml.monitor.performance import monitor_metric

    assert cfg.deploy is not None
    endpoint = cfg.deploy.endpoint
    first = server.loaded(first_id)
    classes = first.signature.classes
    task = first.signature.task
    metric, _ = monitor_metric(cfg.monitor.performance_metric, task)
    ans = Answers(server, len(y))
    baseline = ans.of_version(server, first_id)
    decisions = _decisions(store, endpoint, decided_at, clock)
    windows = _windows(cfg, store, ans, y, baseline, metric, task, classes, decisions, clock)
    rollouts: dict[str, list[dict[str, Any]]] = {
        "promotions": [],
        "rollbacks": [],
        "inconclusive": [],
    }
    for d in decisions:
        kind = rollout_kind(d["action"])
        if kind is None or d["actor"] != "controller":
            continue
        rollouts[kind].append(score_decision(cfg, store, server, d, y, task, classes))
    retrains = [
        {
            "id": r["id"],
            "trigger": r["trigger"],
            "status": r["status"],
            "outcome": r["outcome"],
            "version": r["version_id"],
            "at": r["started_at"] if r["started_at"] is not None else r["requested_at"],
            "history_time": _iso(clock.history(r["started_at"] or r["requested_at"])),
            "reason": r["reason"],
        }
        for r in reversed(store.rollouts.retrains(endpoint, limit=10_000))
    ]
    scored = [w for w in windows if w["metric"] is not None and w["metric_no_retrain"] is not None]
    n = sum(w["rows"] for w in scored)
    summary = {
        "metric": metric,
        "windows": len(windows),
        "scored_windows": len(scored),
        "mean_metric": sum(w["metric"] * w["rows"] for w in scored) / n if n else None,
        "mean_metric_no_retrain": (
            sum(w["metric_no_retrain"] * w["rows"] for w in scored) / n if n else None
        ),
        "retrains": len([r for r in retrains if r["status"] != "suppressed"]),
        "promotions": len(rollouts["promotions"]),
        "rollbacks": len(rollouts["rollbacks"]),
        "false_rollbacks": sum(bool(r.get("false_rollback")) for r in rollouts["rollbacks"]),
        "inconclusive": len(rollouts["inconclusive"]),
        "final_champion": store.endpoints.get(endpoint)["champion_id"],
    }
    info = {**info, "wall_seconds": round(time.perf_counter() - t_wall, 2)}
    return {
        **info,
        "endpoint": endpoint,
        "metric": metric,
        "first_champion": first_id,
        "summary": summary,
        "windows": windows,
        "retrains": retrains,
        **rollouts,
        "decisions": decisions,
    }


def _decisions(
    store: Store, endpoint: str, decided_at: dict[int, float], clock: Any
) -> list[dict[str, Any]]:
    out = []
    for d in reversed(store.decisions.list(endpoint=endpoint, limit=100_000)):
        at = decided_at.get(d["id"])
        if at is None:
            continue
        out.append(
            {
                "id": d["id"],
                "at": at,
                "history_time": _iso(clock.history(at)),
                "actor": d["actor"],
                "action": d["action"],
                "subject": d["subject"],
                "reason": d["reason"],
                "evidence": d["evidence"],
            }
        )
    return out


def _windows(
    cfg: Config,
    store: Store,
    ans: Answers,
    y: np.ndarray,
    baseline: tuple[np.ndarray, Any],
    metric: str,
    task: str,
    classes: Any,
    decisions: list[dict[str, Any]],
    clock: Any,
) -> list[dict[str, Any]]:
    W, endpoint = cfg.monitor.window, cfg.deploy.endpoint  # type: ignore[union-attr]
    served = np.flatnonzero(ans.version >= 0)
    if not len(served):
        return []
    starts = np.floor(ans.t[served] / W) * W
    base_pred, base_proba = baseline
    monitored = {
        (w["version"], w["start"]): w.get("performance")
        for w in store.monitoring.series(endpoint, role="champion")
    }
    out = []
    for s in np.unique(starts):
        rows = served[starts == s]
        champ_rows = rows[ans.role[rows] == "champion"]
        counts = Counter(ans.version[champ_rows].tolist())
        champion = counts.most_common(1)[0][0] if counts else None
        scored = len(rows) >= cfg.monitor.min_window_rows
        proba = ans.proba[rows] if ans.proba is not None else None
        live = window_metric(metric, task, y[rows], ans.pred[rows], proba, classes)
        bp = base_proba[rows] if base_proba is not None else None
        none = window_metric(metric, task, y[rows], base_pred[rows], bp, classes)
        mon = monitored.get((champion, float(s))) if champion is not None else None
        e = float(s + W)
        out.append(
            {
                "start": float(s),
                "end": e,
                "history_start": _iso(clock.history(float(s))),
                "history_end": _iso(clock.history(e)),
                "champion": champion,
                "rows": len(rows),
                "canary_rows": int((ans.role[rows] == "canary").sum()),
                "metric": live if scored else None,
                "metric_no_retrain": none if scored else None,
                "monitor_metric": mon,
                "too_few_rows": not scored,
                "decisions": [
                    {"id": d["id"], "action": d["action"], "subject": d["subject"]}
                    for d in decisions
                    if s <= d["at"] < e
                ],
            }
        )
    return out
