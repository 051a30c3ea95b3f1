"""Bin edges, the lookup-table binner and histogram quantiles against numpy."""

import numpy as np
import pytest

from loopml.stats import NumericProfile
from loopml.stats.bins import Binner, coarse_starts, default_edges, histogram_quantiles

rng = np.random.default_rng(21)
SAMPLES = {
    "normal": rng.normal(3, 2, 50_000),
    "lognormal": rng.lognormal(0, 1.25, 50_000),
    "poisson": rng.poisson(4, 50_000).astype(float),
    "pareto": rng.pareto(1.1, 50_000),
}


@pytest.mark.parametrize("name", SAMPLES)
def test_binner_equals_searchsorted_on_edges_neighbours_and_infinities(name):
    x = SAMPLES[name]
    _, fine = default_edges(x)
    probe = np.concatenate(
        [
            x,
            fine,
            np.nextafter(fine, -np.inf),
            np.nextafter(fine, np.inf),
            [np.inf, -np.inf, 1e300, -1e300, 0.0],
        ]
    )
    assert np.array_equal(Binner(fine)(probe), np.searchsorted(fine, probe, side="right"))


@pytest.mark.parametrize("name", SAMPLES)
def test_coarse_edges_are_fine_edges_and_counts_nest(name):
    x = SAMPLES[name]
    coarse, fine = default_edges(x)
    assert np.isin(coarse, fine).all() and len(fine) <= 20 * 16 + 1
    prof = NumericProfile().update(x)
    oracle = np.bincount(
        np.searchsorted(prof.edges, x, side="right"), minlength=len(prof.edges) + 1
    )
    assert np.array_equal(prof.counts, oracle)
    fine_oracle = np.bincount(
        np.searchsorted(prof.fine_edges, x, side="right"), minlength=len(prof.fine_edges) + 1
    )
    assert np.array_equal(prof.fine_counts, fine_oracle)
    with pytest.raises(ValueError, match="coarse bin edge"):
        coarse_starts(np.array([0.5]), np.array([0.0, 1.0]))


def test_histogram_quantiles_within_their_stated_rank_error():
    x = SAMPLES["lognormal"]
    prof = NumericProfile(sketch=False).update(x)
    ranks = np.array([0.01, 0.1, 0.5, 0.9, 0.99])
    q, err = prof.quantiles(ranks)
    true_rank = np.searchsorted(np.sort(x), q, side="left") / len(x)
    assert np.all(np.abs(true_rank - ranks) <= err + 1 / len(x))
    assert err < 0.01  # about 1/320 on the data the edges came from
    empty, nan_err = histogram_quantiles(np.array([0.0, 1.0]), np.array([0]), ranks)
    assert np.isnan(empty).all() and np.isnan(nan_err)
