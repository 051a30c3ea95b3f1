"""The one ROC AUC (loopml.evaluate.measure.auc) against scikit-learn's roc_auc_score: ties,
weights, many columns and labels at once, and single-class input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import roc_auc_score

from loopml.evaluate.measure.auc import RankedScores, roc_auc


def test_equals_sklearn_with_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 3000).astype(bool)
    for score in (rng.random(3000), np.round(rng.random(3000), 1), np.full(3000, 0.5)):
        assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_single_class_is_undefined():
    """scikit-learn warns and answers NaN (older releases raised); the table says NaN, the
    one-column function raises, so no caller averages a NaN in unawares."""
    for y in (np.ones(5, bool), np.zeros(5, bool)):
        with pytest.warns(UndefinedMetricWarning):
            assert np.isnan(roc_auc_score(y, np.arange(5)))
        assert np.isnan(RankedScores(np.arange(5)).roc_auc(y)).all()
        with pytest.raises(ValueError, match="one class"):
            roc_auc(y, np.arange(5))


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.booleans(), st.integers(0, 4), st.integers(0, 3)), min_size=2, max_size=40
    )
)
def test_weighted_equals_sklearn_sample_weight(rows):
    y, score, weight = (np.array(c) for c in zip(*rows, strict=True))
    pos, neg = (weight * y).sum(), (weight * ~y).sum()
    if pos == 0 or neg == 0:
        with pytest.raises(ValueError):
            roc_auc(y, score, sample_weight=weight)
        return
    want = roc_auc_score(y, score, sample_weight=weight)
    assert roc_auc(y, score, sample_weight=weight) == pytest.approx(want, abs=1e-12)


def test_many_columns_and_labels_in_one_call():
    rng = np.random.default_rng(5)
    n = 400
    y = rng.integers(0, 3, n)
    labels = (y[:, None] == np.arange(3)).astype(float)
    scores = np.column_stack([rng.normal(size=n) + y, rng.integers(0, 4, n), np.round(y * 0.1)])
    got = RankedScores(scores).roc_auc(labels)
    want = [[roc_auc_score(labels[:, k], scores[:, j]) for j in range(3)] for k in range(3)]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_one_weighting_per_label_column_is_a_resample_each():
    """The bootstrap's form: row counts of each resample, against the resampled rows."""
    rng = np.random.default_rng(7)
    n, b = 300, 6
    y = rng.integers(0, 2, n)
    score = np.round(rng.random(n) + 0.3 * y, 2)
    draws = rng.integers(0, n, (b, n))
    counts = np.stack([np.bincount(d, minlength=n) for d in draws], axis=1)
    got = RankedScores(score).roc_auc(y, counts)[:, 0]
    want = [roc_auc_score(y[d], score[d]) for d in draws]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_expected_labels_count_as_fractions_of_a_row():
    """Confidence-based estimation: a row with P(positive) = 0.3 is 0.3 of a positive."""
    rng = np.random.default_rng(8)
    p = rng.random(200)
    score = np.round(p, 1)
    doubled = np.concatenate([np.ones(200), np.zeros(200)])
    want = roc_auc_score(doubled, np.tile(score, 2), sample_weight=np.concatenate([p, 1 - p]))
    assert roc_auc(p, score) == pytest.approx(want, abs=1e-12)
