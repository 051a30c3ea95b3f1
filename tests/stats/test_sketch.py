"""Sketches against exact numpy answers, within their stated error bounds."""

import numpy as np
import pytest

from loopml.stats.sketch import HyperLogLog, QuantileSketch


@pytest.mark.parametrize("n", [10, 1_000, 50_000])
def test_hll_within_three_standard_errors(n):
    hll = HyperLogLog().update(np.array([f"v{i}" for i in range(n)], dtype=object))
    assert abs(hll.estimate() - n) <= max(3 * hll.relative_error * n, 1)


def test_hll_merge_is_union_and_duplicates_are_free():
    a = HyperLogLog().update([f"a{i}" for i in range(3000)])
    b = HyperLogLog().update([f"a{i}" for i in range(2000, 5000)] * 3)
    u = a + b
    assert abs(u.estimate() - 5000) <= 3 * u.relative_error * 5000
    assert np.array_equal((b + a).registers, u.registers)
    assert np.array_equal(HyperLogLog.from_str(u.to_str()).registers, u.registers)


def test_kll_exact_while_small_and_within_rank_error_when_large():
    rng = np.random.default_rng(1)
    small = rng.normal(size=300)
    pts, w = QuantileSketch().update(small).weighted_points()
    assert np.array_equal(pts, np.sort(small)) and np.all(w == 1)

    big = rng.lognormal(size=200_000)
    s = QuantileSketch().update(big[:100_000]) + QuantileSketch().update(big[100_000:])
    probe = np.quantile(big, [0.01, 0.1, 0.5, 0.9, 0.99])
    true_cdf = np.searchsorted(np.sort(big), probe, side="left") / len(big)
    assert np.max(np.abs(s.cdf(probe) - true_cdf)) <= s.rank_error
    again = QuantileSketch.from_str(s.to_str())
    assert again.n == s.n and np.allclose(again.cdf(probe), s.cdf(probe))


def test_kll_add_leaves_inputs_untouched():
    a = QuantileSketch().update(np.arange(10.0))
    b = QuantileSketch().update(np.arange(5.0))
    c = a + b
    assert (a.n, b.n, c.n) == (10, 5, 15)
