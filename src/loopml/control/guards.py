"""Operational rollout guards: error rate, p99 latency and prediction drift of the challenger,
judged on batches of its rows, rolled back only after ``guards.consecutive`` breached batches in
a row. (Decision quality is not judged here but by the paired sequential test of
``control.judgement``.)

Why batches and k-consecutive, not a threshold at every look: a canary is looked at again and
again, and a check repeated at every look raises an A/A false rollback from 5% to 28% over 30
looks (docs/design/measurements.md, "Drift"; tests/control/test_guards.py checks that these
guards keep it at or below 5%). Each batch holds at least ``guards.min_samples`` new challenger
rows, batches never overlap, so the number of looks is set by the traffic and not by how often
the controller wakes up, and a breach must persist for ``consecutive`` batches (Flagger's ``threshold``, Argo's ``failureLimit``).

Checks (each is skipped, not passed, when it has too few rows):

- error rate: share of challenger rows whose ``_flags`` mention "error" (the monitor's rule);
- p99 latency of the challenger's rows, in ms;
- prediction drift: PSI (``loopml.stats.distance.psi``) of the challenger's scores (or
  predictions) against the champion's on the same rows (paired), on the champion's decile
  bins, or on the values themselves when there are few distinct values (class labels). A
  retrained model is *meant* to predict differently after a concept shift, so once the
  paired test shows the challenger non-inferior, prediction drift no longer breaches.

Everything here is a pure function of summary numbers, so the statistical test can drive it
with synthetic batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.config import GuardsConfig
from loopml.stats.distance import psi

MAX_CATEGORIES = 20  # at most this many distinct values: compare them as categories


@dataclass
class Sample:
    """One side of a guard batch: a version's rows in one period, summarised."""

    n: int = 0
    errors: int = 0
    p99_ms: float | None = None
    labelled: int = 0
    correct: int = 0
    values: np.ndarray = field(default_factory=lambda: np.empty(0))  # scores or predictions

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.n,
            "errors": self.errors,
            "p99_ms": self.p99_ms,
            "labelled": self.labelled,
            "accuracy": self.accuracy,
        }


@dataclass
class GuardReading:
    """What the operational guards read on one batch: ``breached`` True (a guard breached),
    False (all held) or None (nothing could be judged). Not a gate's pass/fail
    :data:`loopml.types.Verdict`."""

    breached: bool | None
    checks: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"breached": self.breached, "checks": self.checks}


def prediction_drift(challenger: np.ndarray, champion: np.ndarray) -> float:
    """PSI of the challenger's values against the champion's (Siddiqi 2006; see stats.distance)."""
    a, b = np.asarray(challenger), np.asarray(champion)
    if a.dtype.kind in "fc":
        a = a[np.isfinite(a)]
    if b.dtype.kind in "fc":
        b = b[np.isfinite(b)]
    both = np.concatenate([a, b])
    cats = np.unique(both)
    if len(cats) <= MAX_CATEGORIES or both.dtype.kind not in "fiu":
        ref = np.searchsorted(cats, b)
        cur = np.searchsorted(cats, a)
        k = len(cats)
    else:
        edges = np.unique(np.quantile(b, np.linspace(0, 1, 11)[1:-1]))
        ref, cur = np.searchsorted(edges, b, side="right"), np.searchsorted(edges, a, side="right")
        k = len(edges) + 1
    return float(psi(np.bincount(ref, minlength=k), np.bincount(cur, minlength=k)))


def judge(
    guards: GuardsConfig, challenger: Sample, champion: Sample, *, quality_shown: bool = False
) -> GuardReading:
    """Judge one batch of challenger rows against the champion's answers on the same rows."""
    need = guards.min_samples
    checks: dict[str, dict[str, Any]] = {}
    if guards.max_error_rate is not None and challenger.n >= need:
        rate = challenger.errors / challenger.n
        checks["error_rate"] = {
            "value": rate,
            "threshold": guards.max_error_rate,
            "op": ">",
            "n": challenger.n,
            "breached": rate > guards.max_error_rate,
        }
    if guards.max_p99_ms is not None and challenger.n >= need and challenger.p99_ms is not None:
        checks["p99_ms"] = {
            "value": challenger.p99_ms,
            "threshold": guards.max_p99_ms,
            "op": ">",
            "n": challenger.n,
            "breached": challenger.p99_ms > guards.max_p99_ms,
        }
    if (
        guards.max_prediction_drift is not None
        and len(challenger.values) >= need
        and len(champion.values) >= need
    ):
        d = prediction_drift(challenger.values, champion.values)
        checks["prediction_drift"] = {
            "value": d,
            "threshold": guards.max_prediction_drift,
            "op": ">",
            "method": "psi",
            "n": len(challenger.values),
            "n_champion": len(champion.values),
            "breached": d > guards.max_prediction_drift,
        }
    if not checks:
        return GuardReading(None, {})
    if quality_shown and "prediction_drift" in checks:
        # once the paired test shows the challenger non-inferior, different predictions are
        # the point of a retrained model (e.g. after a concept shift), not a fault
        checks["prediction_drift"]["breached"] = False
        checks["prediction_drift"]["overruled_by"] = "paired quality test"
    return GuardReading(any(c["breached"] for c in checks.values()), checks)


def next_streak(streak: int, verdict: GuardReading) -> int:
    """Consecutive breached batches after this one (a batch with nothing judged changes nothing)."""
    if verdict.breached is None:
        return streak
    return streak + 1 if verdict.breached else 0


def should_roll_back(guards: GuardsConfig, streak: int) -> bool:
    return streak >= guards.consecutive
