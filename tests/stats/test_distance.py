"""Every distance and test against scipy/numpy, on exact data and through the sketches."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from loopml.stats import DatasetProfile, column_drift
from loopml.stats import distance as dist
from loopml.stats.column import NumericProfile

rng = np.random.default_rng(7)
P = rng.integers(0, 50, 12)
Q = rng.integers(0, 50, 12)
Q[3] = 0


def test_count_distances_match_oracles():
    p, q = P / P.sum(), Q / Q.sum()
    assert dist.js_distance(P, Q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
    pe, qe = np.clip(p, 1e-4, None), np.clip(q, 1e-4, None)
    assert dist.psi(P, Q) == pytest.approx(np.sum((qe - pe) * np.log(qe / pe)))
    assert dist.linf(P, Q) == pytest.approx(np.max(np.abs(p - q)))
    res = stats.chi2_contingency(np.vstack([P, Q]), correction=False)
    assert dist.chi_square(P, Q) == pytest.approx((res.statistic, res.pvalue))
    assert dist.js_distance(P, P) == 0 and dist.psi(P, P) == 0


def test_count_distances_vectorise_over_rows():
    draws = rng.multinomial(500, P / P.sum(), size=5)
    vec = dist.js_distance(P, draws)
    assert np.allclose(vec, [jensenshannon(P / P.sum(), d / d.sum(), base=2) for d in draws])
    assert np.allclose(dist.psi(P, draws), [dist.psi(P, d) for d in draws])


@pytest.mark.parametrize("n,m", [(50, 80), (300, 250), (2000, 3000)])
def test_ks_and_wasserstein_exact_on_raw_samples(n, m):
    x, y = np.sort(rng.normal(0, 1, n)), np.sort(rng.normal(0.3, 1.2, m))
    wx, wy = np.ones(n), np.ones(m)
    ref = stats.ks_2samp(x, y, method="asymp")
    assert dist.ks_statistic(x, wx, y, wy) == pytest.approx(ref.statistic, abs=1e-12)
    assert dist.ks_pvalue(ref.statistic, n, m) == pytest.approx(ref.pvalue, rel=1e-6)
    assert dist.wasserstein(x, wx, y, wy) == pytest.approx(
        stats.wasserstein_distance(x, y), rel=1e-9
    )


def test_weighted_points_match_scipy_weights():
    x, y = np.sort(rng.normal(size=40)), np.sort(rng.normal(size=30))
    wx, wy = rng.integers(1, 5, 40).astype(float), rng.integers(1, 5, 30).astype(float)
    assert dist.wasserstein(x, wx, y, wy) == pytest.approx(stats.wasserstein_distance(x, y, wx, wy))


SHAPES = {
    "normal": lambda r, n, s: r.normal(s, 1, n),
    "lognormal": lambda r, n, s: r.lognormal(s, 1.25, n),
    "poisson": lambda r, n, s: r.poisson(4 + 2 * s, n).astype(float),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("n", [300, 20_000])
def test_histogram_ks_and_wasserstein_bound_the_exact_statistics(shape, n):
    r = np.random.default_rng(n)
    x, y = SHAPES[shape](r, 100_000, 0.0), SHAPES[shape](r, n, 0.2)
    ref = NumericProfile().update(x)
    res = column_drift("x", ref, ref.empty_like(sketch=False).update(y))
    ks_lo, ks_hi = res.evidence["ks_bounds"]
    w_lo, w_hi = res.evidence["wasserstein_bounds"]
    exact_ks = stats.ks_2samp(x, y).statistic
    exact_w = stats.wasserstein_distance(x, y) / x.std()
    assert res.evidence["source"] == "histogram" and res.scores["ks"] == ks_lo
    assert ks_lo - 1e-12 <= exact_ks <= ks_hi + 1e-12
    assert w_lo - 1e-12 <= exact_w <= w_hi + 1e-12 and w_lo <= res.scores["wasserstein"] <= w_hi
    if shape != "poisson":  # on continuous data a fine cell holds ~1/320 of the rows
        assert ks_hi - ks_lo < 0.01
    counts_y = np.bincount(
        np.searchsorted(ref.edges, y, side="right"), minlength=len(ref.edges) + 1
    )
    assert res.scores["jensenshannon"] == pytest.approx(jensenshannon(ref.counts, counts_y, base=2))
    assert res.evidence["current"] == counts_y.tolist()


def test_binned_distances_vectorise_and_vanish_on_equal_histograms():
    counts = rng.integers(0, 100, 30)
    draws = rng.multinomial(2000, counts / counts.sum(), size=4)
    bounds = np.linspace(0.0, 1.0, 31)
    ks, ks_hi = dist.binned_ks(counts, draws)
    w, w_lo, w_hi = dist.binned_wasserstein(bounds, counts, draws)
    for i, d in enumerate(draws):
        assert (ks[i], ks_hi[i]) == pytest.approx(dist.binned_ks(counts, d))
        assert (w[i], w_lo[i], w_hi[i]) == pytest.approx(dist.binned_wasserstein(bounds, counts, d))
    assert (
        dist.binned_ks(counts, counts)[0] == 0
        and dist.binned_wasserstein(bounds, counts, counts)[0] == 0
    )


def test_sketched_ks_and_wasserstein_within_stated_bounds():
    x = rng.lognormal(0, 1, 200_000)
    y = rng.lognormal(0.1, 1, 150_000)
    ref = DatasetProfile.from_frame(pd.DataFrame({"v": x}))
    own = DatasetProfile.from_frame(
        pd.DataFrame({"v": y})
    )  # its own edges: only the sketches line up
    res = column_drift("v", ref.columns["v"], own.columns["v"])
    assert res.evidence["source"] == "sketch"
    eps = ref.columns["v"].sketch.rank_error + own.columns["v"].sketch.rank_error
    assert abs(res.scores["ks"] - stats.ks_2samp(x, y).statistic) <= eps
    exact_w = stats.wasserstein_distance(x, y) / x.std()
    lo, hi = res.evidence["wasserstein_bounds"]
    assert lo <= exact_w <= hi


def test_histogram_wasserstein_is_close_in_practice_on_normal_data():
    x, y = rng.normal(0, 1, 200_000), rng.normal(0.3, 1, 100_000)
    ref = NumericProfile().update(x)
    res = column_drift("v", ref, ref.empty_like().update(y))
    assert res.scores["wasserstein"] == pytest.approx(
        stats.wasserstein_distance(x, y) / x.std(), abs=0.01
    )


def test_categorical_scores_match_scipy():
    a = pd.DataFrame({"c": rng.choice(list("abcd"), 5000, p=[0.4, 0.3, 0.2, 0.1])})
    b = pd.DataFrame({"c": rng.choice(list("abce"), 3000, p=[0.25, 0.25, 0.25, 0.25])})
    ref = DatasetProfile.from_frame(a)
    cur = DatasetProfile.from_frame(b, reference=ref)
    res = column_drift("c", ref.columns["c"], cur.columns["c"], method="linf")
    keys = list("abcde")
    ra = a["c"].value_counts().reindex(keys, fill_value=0).to_numpy()
    rb = b["c"].value_counts().reindex(keys, fill_value=0).to_numpy()
    assert res.value == pytest.approx(np.max(np.abs(ra / ra.sum() - rb / rb.sum())))
    assert res.scores["jensenshannon"] == pytest.approx(jensenshannon(ra, rb, base=2))
    assert res.p_value == pytest.approx(
        stats.chi2_contingency(np.vstack([ra, rb]), correction=False).pvalue
    )
    assert res.drifted and sorted(res.evidence["categories"]) == keys
