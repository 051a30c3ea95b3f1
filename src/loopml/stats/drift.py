"""Drift of a current window against a reference, computed from two stored profiles.

Per column every distance is computed (they are cheap once the profiles exist) and one, the
column's *method*, decides. Defaults use effect sizes, not p-values, because on large windows
a p-value measures the sample size (research/loop.md section 4): numeric columns use PSI on the
reference's equal-mass bins, categorical ones the Jensen-Shannon distance (base 2), both with
Evidently's 0.1 as the minimum effect. PSI rather than the normalised Wasserstein distance
(Evidently's ``wasserstein_distance_norm``, available as ``"wasserstein"``) because PSI is exact
on the stored histograms, while Wasserstein is known only within bounds and is dominated by
the tails (an earlier KLL-based estimate on a lognormal(0, 1.25) column measured 0.02-0.12 on
10k-row no-drift windows against 0.01-0.02 exactly). ``calibrate_thresholds`` raises a threshold
above that floor where a window of the given size would cross it by chance (small windows).

Sources and error bounds: histogram distances (PSI, JS, L-infinity, chi-square) are exact on the
reference's bin edges. KS and Wasserstein come from the fine histograms (320 reference
equal-mass cells) with certain bounds that travel in the evidence (``ks_bounds``,
``wasserstein_bounds``): the raw rows' statistic lies inside them. Only when a window was built
on other edges do they come from the two KLL sketches, within eps_ref + eps_cur (KS) and
(eps_ref + eps_cur) * (max - min) (Wasserstein) at 99% confidence, eps = 0.68% at k=400.

Dataset drift is the importance-weighted share of drifted columns (Evidently's drift share,
default 0.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from loopml.errors import UsageError
from loopml.stats import distance as dist
from loopml.stats.column import CategoricalProfile, ColumnProfile, NumericProfile
from loopml.stats.profile import DatasetProfile

NUMERIC_METHODS = ("psi", "wasserstein", "ks", "jensenshannon")
CATEGORICAL_METHODS = ("jensenshannon", "linf", "psi", "chisquare")
DEFAULT_METHOD = {"numeric": "psi", "categorical": "jensenshannon"}
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
P_VALUE_METHODS = frozenset({"chisquare"})
EVIDENCE_LEVELS = 50


@dataclass
class ColumnDrift:
    """One column's verdict, with every score and the histograms behind it."""

    column: str
    kind: str
    method: str
    value: float
    threshold: float
    drifted: bool
    p_value: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    n_reference: int = 0
    n_current: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DatasetDrift:
    """Columns' verdicts and the importance-weighted share of drifted columns."""

    columns: list[ColumnDrift]
    share: float
    drift_share: float
    drifted: bool
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "share": self.share,
            "drift_share": self.drift_share,
            "drifted": self.drifted,
            "drifted_columns": self.drifted_columns,
            "skipped": self.skipped,
            "columns": [c.to_dict() for c in self.columns],
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


def _aligned(ref: NumericProfile, cur: NumericProfile) -> bool:
    return ref.shares_edges(cur) and ref.fine_counts is not None and cur.fine_counts is not None


def _sketch_counts(ref: NumericProfile, cur: NumericProfile) -> np.ndarray:
    """Current counts on the reference's coarse edges, estimated from the current sketch."""
    assert ref.edges is not None and cur.sketch is not None
    cdf = np.concatenate([[0.0], cur.sketch.cdf(ref.edges), [1.0]])
    return np.round(np.diff(cdf) * cur.sketch.n).astype(np.int64)


def _scale(ref: NumericProfile) -> float:
    std = ref.std
    return std if np.isfinite(std) and std > 0 else 1.0


def numeric_scores(
    ref: NumericProfile, cur: NumericProfile
) -> tuple[dict[str, float], dict[str, Any], float | None]:
    """All numeric distances, the histogram evidence (with KS and Wasserstein bounds), the KS p-value.

    On shared edges (a window built with ``reference=``) everything comes from the exact fine
    histograms and the bounds are certain. Otherwise counts, KS and Wasserstein come from the
    two KLL sketches (error eps_ref + eps_cur at 99% confidence); without sketches the two
    cannot be compared and a ``UsageError`` says how to build the window.
    """
    assert ref.edges is not None and ref.counts is not None
    scale = _scale(ref)
    nan = float("nan")
    if _aligned(ref, cur):
        assert (
            ref.fine_counts is not None and cur.fine_counts is not None and cur.counts is not None
        )
        counts, source = cur.counts, "histogram"
        d, d_hi = dist.binned_ks(ref.fine_counts, cur.fine_counts)
        w, w_lo, w_hi = dist.binned_wasserstein(
            ref.cell_bounds(cur), ref.fine_counts, cur.fine_counts
        )
        ks_bounds, w_bounds = [d, d_hi], [w_lo / scale, w_hi / scale]
    elif ref.sketch is not None and cur.sketch is not None and ref.sketch.n and cur.sketch.n:
        counts, source = _sketch_counts(ref, cur), "sketch"
        x, wx = ref.sketch.weighted_points()
        y, wy = cur.sketch.weighted_points()
        d, w = dist.ks_statistic(x, wx, y, wy), dist.wasserstein(x, wx, y, wy)
        eps = ref.sketch.rank_error + cur.sketch.rank_error
        span = max(ref.max, cur.max) - min(ref.min, cur.min)
        ks_bounds = [max(d - eps, 0.0), min(d + eps, 1.0)]
        w_bounds = [max(w - eps * span, 0.0) / scale, (w + eps * span) / scale]
    else:
        raise UsageError(
            "the current profile was built on other bin edges and one side has no quantile "
            "sketch, so the two cannot be compared; build the window with "
            "DatasetProfile.from_frame(frame, reference=ref)",
            field="current",
        )
    scores = {
        "psi": dist.psi(ref.counts, counts),
        "jensenshannon": dist.js_distance(ref.counts, counts),
        "ks": d,
        "wasserstein": w / scale if np.isfinite(w) else nan,
    }
    evidence = {
        "edges": ref.edges.tolist(),
        "reference": ref.counts.tolist(),
        "current": counts.tolist(),
        "approximate": source == "sketch",
        "source": source,
        "ks_bounds": ks_bounds,
        "wasserstein_bounds": w_bounds,
    }
    return scores, evidence, dist.ks_pvalue(d, ref.n_finite, cur.n_finite)


def _category_counts(
    ref: CategoricalProfile, cur: CategoricalProfile
) -> tuple[list[str], np.ndarray, np.ndarray]:
    rf, cf = ref.frequencies(), cur.frequencies()
    keys = sorted(rf, key=lambda k: (-rf[k], k)) + sorted(set(cf) - set(rf))
    return keys, np.array([rf.get(k, 0) for k in keys]), np.array([cf.get(k, 0) for k in keys])


def categorical_scores(
    ref: CategoricalProfile, cur: CategoricalProfile
) -> tuple[dict[str, float], dict[str, Any], float | None]:
    keys, rc, cc = _category_counts(ref, cur)
    stat, p = dist.chi_square(rc, cc)
    scores = {
        "psi": dist.psi(rc, cc),
        "jensenshannon": dist.js_distance(rc, cc),
        "linf": dist.linf(rc, cc),
        "chisquare": p,
        "chisquare_statistic": stat,
    }
    top = np.argsort(-(rc / max(rc.sum(), 1) + cc / max(cc.sum(), 1)), kind="stable")[
        :EVIDENCE_LEVELS
    ]
    evidence = {
        "categories": [keys[i] for i in top],
        "reference": rc[top].tolist(),
        "current": cc[top].tolist(),
        "rest": {
            "reference": int(rc.sum() - rc[top].sum()),
            "current": int(cc.sum() - cc[top].sum()),
        },
    }
    return scores, evidence, p


def column_drift(
    name: str,
    ref: ColumnProfile,
    cur: ColumnProfile,
    *,
    method: str | None = None,
    threshold: float | None = None,
) -> ColumnDrift:
    """Compare one column's current profile with its reference profile."""
    if ref.kind != cur.kind:
        raise UsageError(
            f"column {name!r} is {ref.kind} in the reference but {cur.kind} in the current "
            "window; the data-quality type check reports this, drift cannot compare them",
            field=name,
        )
    method = method or DEFAULT_METHOD[ref.kind]
    allowed = NUMERIC_METHODS if ref.kind == "numeric" else CATEGORICAL_METHODS
    if method not in allowed:
        raise UsageError(
            f"drift method {method!r} does not apply to {ref.kind} column {name!r}; "
            f"choose one of {', '.join(allowed)}",
            field=name,
        )
    if isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile):
        scores, evidence, p = numeric_scores(ref, cur)
    else:
        assert isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalProfile)
        scores, evidence, p = categorical_scores(ref, cur)
    value = scores[method]
    thr = MIN_EFFECT[method] if threshold is None else threshold
    if method in P_VALUE_METHODS:
        drifted = bool(value < thr)
    else:
        drifted = bool(np.isfinite(value) and value >= thr)
    return ColumnDrift(
        name,
        ref.kind,
        method,
        float(value),
        float(thr),
        drifted,
        p,
        {k: float(v) for k, v in scores.items()},
        evidence,
        ref.count,
        cur.count,
    )


def dataset_drift(
    reference: DatasetProfile,
    current: DatasetProfile,
    *,
    thresholds: Thresholds | Mapping[str, float] | None = None,
    methods: Mapping[str, str] | None = None,
    importance: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
    columns: list[str] | None = None,
) -> DatasetDrift:
    """Drift of every shared column and the importance-weighted share of drifted columns.

    ``methods`` maps a column name or a kind ("numeric", "categorical") to a method;
    ``thresholds`` is a calibrated ``Thresholds`` or a column -> threshold mapping (unlisted
    columns use the method's minimum effect); ``importance`` weighs columns (default 1 each).
    """
    methods = dict(methods or {})
    names = columns if columns is not None else list(reference.columns)
    results: list[ColumnDrift] = []
    skipped: dict[str, str] = {}
    for name in names:
        ref, cur = reference.columns.get(name), current.columns.get(name)
        if ref is None or cur is None:
            skipped[name] = (
                "missing from the current window" if ref else "missing from the reference"
            )
            continue
        if ref.kind != cur.kind:
            skipped[name] = f"kind changed from {ref.kind} to {cur.kind}"
            continue
        if ref.count == 0 or cur.count == 0:
            skipped[name] = "no non-null values in the reference or the window"
            continue
        if (
            isinstance(ref, NumericProfile)
            and isinstance(cur, NumericProfile)
            and not _aligned(ref, cur)
            and (ref.sketch is None or cur.sketch is None)
        ):
            skipped[name] = "built on other bin edges than the reference and without a sketch"
            continue
        method = methods.get(name) or methods.get(ref.kind) or DEFAULT_METHOD[ref.kind]
        thr: float | None
        if isinstance(thresholds, Thresholds):
            thr = thresholds.get(name, method)
        elif thresholds is not None:
            thr = thresholds.get(name)
        else:
            thr = None
        results.append(column_drift(name, ref, cur, method=method, threshold=thr))
    weights = np.array([(importance or {}).get(r.column, 1.0) for r in results], dtype=float)
    flags = np.array([r.drifted for r in results], dtype=float)
    share = float(weights @ flags / weights.sum()) if weights.sum() > 0 else 0.0
    return DatasetDrift(
        results, share, drift_share, bool(results) and share >= drift_share, skipped
    )


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
        "wasserstein": w / _scale(ref),
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
