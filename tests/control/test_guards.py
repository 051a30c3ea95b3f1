"""The operational guard function (errors, latency, prediction drift) and its statistics.

The statistical test simulates 200 A/A rollouts at the level of the guard function (seeded,
synthetic per-batch samples): steps 5 -> 25 -> 50 -> 100 %, five judged batches of
``min_samples`` canary rows per step (20 looks). With the defaults of ``GuardsConfig`` an A/A
pair must be rolled back in <= 5 % of rollouts. Decision quality (accuracy and the other
metrics) is judged by the paired sequential test: tests/control/test_judgement.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from loopml.config import GuardsConfig
from loopml.control.guards import Sample, judge, next_streak, prediction_drift, should_roll_back
from loopml.stats.distance import psi

STEPS = (5, 25, 50, 100)
BATCHES_PER_STEP = 5


def _side(rng: np.random.Generator, n: int, accuracy: float, n_values: int | None = None) -> Sample:
    """Counts for ``n`` rows; scores for ``n_values`` of them (the drift check's distribution
    is the same either way, and the champion's 19 x rows would only slow the simulation)."""
    scores = rng.beta(2, 5, n if n_values is None else n_values)
    return Sample(
        n=n,
        errors=int(rng.binomial(n, 0.001)),
        p99_ms=float(rng.normal(40, 3)),
        labelled=n,
        correct=int(rng.binomial(n, accuracy)),
        values=scores,
    )


def simulate(
    guards: GuardsConfig, delta: float, *, rollouts: int = 200, seed: int = 0, base: float = 0.8
) -> float:
    """Share of simulated rollouts rolled back when the challenger's accuracy is base + delta."""
    rng = np.random.default_rng(seed)
    n = guards.min_samples
    rolled = 0
    for _ in range(rollouts):
        streak, pooled = 0, Sample()
        for w in STEPS:
            for _ in range(BATCHES_PER_STEP):
                chal = _side(rng, n, base + delta)
                n_champ = n * (100 - w) // w
                if n_champ >= n:
                    champ = _side(rng, n_champ, base, n_values=n)
                    pooled = Sample(
                        n=pooled.n + champ.n,
                        labelled=pooled.labelled + champ.labelled,
                        correct=pooled.correct + champ.correct,
                        values=champ.values,
                    )
                else:
                    champ = pooled
                streak = next_streak(streak, judge(guards, chal, champ))
                if should_roll_back(guards, streak):
                    break
            else:
                continue
            rolled += 1
            break
    return rolled / rollouts


def test_aa_rollouts_rarely_rolled_back() -> None:
    rate = simulate(GuardsConfig(), 0.0, seed=1)
    assert rate <= 0.05, rate


def test_checks_skip_small_samples_and_judge_each_guard() -> None:
    g = GuardsConfig(
        min_samples=100,
        max_error_rate=0.01,
        max_p99_ms=100,
        max_prediction_drift=0.2,
    )
    rng = np.random.default_rng(0)
    small = Sample(n=50, errors=50, p99_ms=1e4, labelled=50, correct=0, values=rng.random(50))
    assert judge(g, small, small).breached is None
    ok = _side(rng, 1000, 0.8)
    v = judge(g, ok, _side(rng, 1000, 0.8))
    assert v.breached is False and set(v.checks) == {
        "error_rate",
        "p99_ms",
        "prediction_drift",
    }
    slow = Sample(**{**ok.__dict__, "p99_ms": 250.0})
    v = judge(g, slow, ok)
    assert v.breached and [k for k, c in v.checks.items() if c["breached"]] == ["p99_ms"]
    shifted = Sample(**{**ok.__dict__, "values": rng.beta(5, 2, 1000)})
    assert judge(g, shifted, ok).checks["prediction_drift"]["breached"]
    # once the paired test shows it non-inferior, a shifted score distribution is no fault
    v = judge(g, shifted, ok, quality_shown=True)
    assert not v.breached and v.checks["prediction_drift"]["overruled_by"] == "paired quality test"


def test_streak_counts_consecutive_breaches_only() -> None:
    from loopml.control.guards import GuardReading

    b, ok, none = GuardReading(True, {}), GuardReading(False, {}), GuardReading(None, {})
    s = 0
    for v, want in ((b, 1), (none, 1), (b, 2), (ok, 0), (b, 1)):
        s = next_streak(s, v)
        assert s == want


@pytest.mark.parametrize("seed", [0, 1])
def test_prediction_drift_is_psi_on_champion_deciles(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0.3, 1, 2000), rng.normal(0, 1, 3000)
    edges = np.quantile(b, np.linspace(0, 1, 11)[1:-1])
    # oracle: histogram on the champion's deciles with numpy, PSI as Siddiqi defines it
    pb = np.histogram(b, np.concatenate([[-np.inf], edges, [np.inf]]))[0]
    pa = np.histogram(a, np.concatenate([[-np.inf], edges, [np.inf]]))[0]
    assert prediction_drift(a, b) == pytest.approx(psi(pb, pa), rel=1e-9)
    q, p = pa / pa.sum(), pb / pb.sum()
    assert prediction_drift(a, b) == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-6)
    # class labels: compared as categories
    ca, cb = rng.integers(0, 2, 500).astype(float), rng.integers(0, 2, 500).astype(float)
    counts = lambda x: np.bincount(x.astype(int), minlength=2)  # noqa: E731
    assert prediction_drift(ca, cb) == pytest.approx(psi(counts(cb), counts(ca)))
    assert stats.ks_2samp(a, b).statistic > 0  # the shadow comparison's KS comes from scipy
