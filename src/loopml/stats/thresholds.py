"""Drift thresholds: the minimum effect per method and calibration to a window size.

Defaults are effect sizes, not p-values, because on large windows a p-value measures the
sample size (docs/design/measurements.md, "Drift"): Evidently's 0.1 for PSI, Jensen-Shannon and the
normalised Wasserstein distance. On small windows a no-drift window can cross that floor by
chance, so ``calibrate_thresholds`` raises it to a high quantile of the distances of windows
drawn from the stored reference profile itself (never the training rows).

Wasserstein is divided by the reference's standard deviation (``wasserstein_scale``), like
Evidently's ``wasserstein_distance_norm``, so one threshold fits every column. Scoring
(``drift.numeric_scores``) and calibration must divide by the same scale, hence one function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from loopml.errors import UsageError
from loopml.stats import distance as dist
from loopml.stats.column import CategoricalProfile, NumericProfile
from loopml.stats.profile import DatasetProfile

# Minimum effect sizes (Evidently's 0.1 for PSI, JS and normed Wasserstein; 0.1 for L-infinity
# as in NannyML's docs). chisquare is a p-value test: drift when p < 0.05 (opt-in).
MIN_EFFECT = {
    "wasserstein": 0.1,
    "psi": 0.1,
    "ks": 0.1,
    "jensenshannon": 0.1,
    "linf": 0.1,
    "chisquare": 0.05,
}


@dataclass
class Thresholds:
    """Per-column thresholds from ``calibrate_thresholds``: column -> method -> threshold."""

    window_size: int
    quantile: float
    n_resamples: int
    values: dict[str, dict[str, float]]

    def get(self, column: str, method: str) -> float | None:
        return self.values.get(column, {}).get(method)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Thresholds:
        return cls(
            int(d["window_size"]),
            float(d["quantile"]),
            int(d["n_resamples"]),
            {c: {m: float(v) for m, v in ms.items()} for c, ms in d["values"].items()},
        )


def wasserstein_scale(ref: NumericProfile) -> float:
    """The reference's standard deviation, or 1 where it is zero or undefined."""
    std = ref.std
    return std if np.isfinite(std) and std > 0 else 1.0


def _null_numeric(
    ref: NumericProfile, n: int, n_resamples: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Distances of windows of n rows drawn from the reference against the reference.

    A window is a multinomial draw on the reference's fine cells, and every distance is then
    computed exactly as for a real window on those cells (coarse sums for PSI and JS).
    """
    assert ref.fine_counts is not None
    fine = ref.fine_counts
    draws = rng.multinomial(n, fine / fine.sum(), size=n_resamples)
    coarse = ref.coarsen(draws)
    ref_coarse = ref.counts
    assert ref_coarse is not None
    ks, _ = dist.binned_ks(fine, draws)
    w, _, _ = dist.binned_wasserstein(ref.cell_bounds(), fine, draws)
    return {
        "psi": dist.psi(ref_coarse, coarse),
        "jensenshannon": dist.js_distance(ref_coarse, coarse),
        "ks": ks,
        "wasserstein": w / wasserstein_scale(ref),
    }


def _null_categorical(
    ref: CategoricalProfile, n: int, n_resamples: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    counts = np.array(list(ref.frequencies().values()), dtype=np.float64)
    draws = rng.multinomial(n, counts / counts.sum(), size=n_resamples)
    return {
        "psi": dist.psi(counts, draws),
        "jensenshannon": dist.js_distance(counts, draws),
        "linf": dist.linf(counts, draws),
    }


def calibrate_thresholds(
    reference: DatasetProfile,
    window_size: int,
    *,
    n_resamples: int = 200,
    quantile: float = 0.99,
    min_effect: Mapping[str, float] | None = None,
    seed: int = 0,
) -> Thresholds:
    """Thresholds that a no-drift window of ``window_size`` rows crosses with low probability.

    For each column and method: draw ``n_resamples`` windows from the stored reference (a
    multinomial on its fine histogram for numeric columns, on its level counts for categorical
    ones), take the ``quantile`` of their distances to the reference, and never go
    below the method's minimum effect. Uses the profile only, never the training rows.
    """
    if window_size < 1 or n_resamples < 10 or not 0.5 <= quantile < 1:
        raise UsageError(
            "calibrate_thresholds needs window_size >= 1, n_resamples >= 10 and 0.5 <= quantile < 1; "
            f"got {window_size}, {n_resamples}, {quantile}",
            field="window_size",
        )
    floors = {**MIN_EFFECT, **(min_effect or {})}
    rng = np.random.default_rng(seed)
    values: dict[str, dict[str, float]] = {}
    for name, prof in reference.columns.items():
        if prof.count == 0 or (isinstance(prof, NumericProfile) and prof.n_finite == 0):
            continue
        if isinstance(prof, NumericProfile):
            null = _null_numeric(prof, window_size, n_resamples, rng)
        else:
            null = _null_categorical(prof, window_size, n_resamples, rng)
        values[name] = {m: max(floors[m], float(np.quantile(v, quantile))) for m, v in null.items()}
        if isinstance(prof, CategoricalProfile):
            values[name]["chisquare"] = floors["chisquare"]
    return Thresholds(window_size, quantile, n_resamples, values)
