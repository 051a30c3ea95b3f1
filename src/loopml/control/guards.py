"""Rollout guards: judge one batch of challenger rows against the champion's rows of the same
period, and roll back only after ``guards.consecutive`` breached batches in a row.

Why batches and k-consecutive, not a p-value at every look: a canary is looked at again and
again, and a naive test repeated at every look raises an A/A false rollback from 5% to 28%
over 30 looks (research note "loop", section 4). Here each batch holds at least
``guards.min_samples`` new challenger rows (labelled rows for the accuracy guard), batches
never overlap, so the number of looks is set by the traffic and not by how often the
controller wakes up, and a breach must persist for ``consecutive`` batches (Flagger's
``threshold``, Argo's ``failureLimit``). The defaults in ``GuardsConfig`` are calibrated by
simulation (tests/control/test_guard_statistics.py).

Checks (each is skipped, not passed, when it has too few rows):

- error rate: share of challenger rows whose ``_flags`` mention "error" (the monitor's rule);
- p99 latency of the challenger's rows, in ms;
- prediction drift: PSI (``loopml.stats.distance.psi``) of the challenger's scores (or
  predictions) against the champion's in the same batch, on the champion's decile bins, or on
  the values themselves when there are few distinct values (class labels);
- accuracy drop: champion accuracy minus challenger accuracy on the batch's labelled rows.

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

    def __add__(self, other: Sample) -> Sample:
        p99 = [p for p in (self.p99_ms, other.p99_ms) if p is not None]
        return Sample(
            n=self.n + other.n,
            errors=self.errors + other.errors,
            p99_ms=max(p99) if p99 else None,
            labelled=self.labelled + other.labelled,
            correct=self.correct + other.correct,
            values=np.concatenate([self.values, other.values]),
        )

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
class Verdict:
    """A batch's verdict: True breached, False held, None nothing could be judged."""

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


def judge(guards: GuardsConfig, challenger: Sample, champion: Sample) -> Verdict:
    """Judge one batch of challenger rows against the champion's rows of the same period."""
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
    if (
        guards.max_accuracy_drop is not None
        and challenger.labelled >= need
        and champion.labelled >= need
    ):
        drop = float(champion.accuracy - challenger.accuracy)  # type: ignore[operator]
        checks["accuracy_drop"] = {
            "value": drop,
            "threshold": guards.max_accuracy_drop,
            "op": ">",
            "challenger": challenger.accuracy,
            "champion": champion.accuracy,
            "n": challenger.labelled,
            "n_champion": champion.labelled,
            "breached": drop > guards.max_accuracy_drop,
        }
    if not checks:
        return Verdict(None, {})
    acc = checks.get("accuracy_drop")
    if acc is not None and not acc["breached"] and "prediction_drift" in checks:
        # Prediction drift stands in for accuracy while labels are missing. Once labelled rows
        # show the challenger is not less accurate, different predictions are the point of a
        # retrained model (e.g. after a concept shift), not a fault.
        checks["prediction_drift"]["breached"] = False
        checks["prediction_drift"]["overruled_by"] = "accuracy_drop"
    return Verdict(any(c["breached"] for c in checks.values()), checks)


def next_streak(streak: int, verdict: Verdict) -> int:
    """Consecutive breached batches after this one (a batch with nothing judged changes nothing)."""
    if verdict.breached is None:
        return streak
    return streak + 1 if verdict.breached else 0


def should_roll_back(guards: GuardsConfig, streak: int) -> bool:
    return streak >= guards.consecutive
