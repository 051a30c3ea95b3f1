"""Profiles: numpy oracles, merge laws (hypothesis), row order, serialisation, input kinds."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.errors import DataError
from loopml.stats import CategoricalProfile, DatasetProfile, NumericProfile
from loopml.stats.column import OTHER, bin_counts


def _frame(n, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(3, 2, n)
    a[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "a": a,
            "i": rng.integers(0, 7, n),
            "c": pd.array(
                rng.choice(["x", "y", "z", None], n, p=[0.5, 0.3, 0.15, 0.05]), dtype="string"
            ),
        }
    )


REF = DatasetProfile.from_frame(_frame(5000, seed=99))


def test_numeric_matches_numpy():
    df = _frame(20_000)
    prof = DatasetProfile.from_frame(df, reference=REF)
    a = df["a"].to_numpy()
    col = prof.columns["a"]
    fin = a[~np.isnan(a)]
    assert col.count == len(fin) and col.nulls == np.isnan(a).sum()
    assert col.min == fin.min() and col.max == fin.max()
    assert col.mean == pytest.approx(fin.mean(), rel=1e-12)
    assert col.variance == pytest.approx(fin.var(), rel=1e-10)
    idx = np.searchsorted(col.edges, fin, side="right")
    assert np.array_equal(col.counts, np.bincount(idx, minlength=len(col.edges) + 1))
    cat = prof.columns["c"]
    assert cat.counts == df["c"].value_counts().to_dict() and cat.nulls == df["c"].isna().sum()
    assert prof.n_rows == 20_000


def test_bin_counts_handles_infinities_and_nan():
    edges = np.array([0.0, 1.0])
    c = bin_counts(np.array([-np.inf, -1, 0, 0.5, 1, np.inf, np.nan]), edges)
    assert c.tolist() == [2, 2, 2]


def test_pandas_and_arrow_inputs_agree():
    df = _frame(3000)
    p1 = DatasetProfile.from_frame(df, reference=REF)
    p2 = DatasetProfile.from_frame(pa.Table.from_pandas(df, preserve_index=False), reference=REF)
    p3 = DatasetProfile.from_batches(
        pa.Table.from_pandas(df).to_batches(max_chunksize=700), reference=REF
    )
    for p in (p2, p3):
        assert p.n_rows == p1.n_rows
        for name in ("a", "i"):
            assert np.array_equal(p.columns[name].counts, p1.columns[name].counts)
            assert p.columns[name].mean == pytest.approx(p1.columns[name].mean)
        assert p.columns["c"].counts == p1.columns["c"].counts


def _exact_parts(p: DatasetProfile):
    a, c = p.columns["a"], p.columns["c"]
    return (
        p.n_rows,
        a.count,
        a.nulls,
        a.min,
        a.max,
        tuple(a.fine_counts),
        round(a.mean, 9),
        round(a.variance, 9),
        c.count,
        c.nulls,
        tuple(sorted(c.counts.items())),
        c.other,
    )


cuts = st.lists(st.integers(0, 600), min_size=2, max_size=2).map(sorted)


@settings(max_examples=25, deadline=None)
@given(cuts=cuts, seed=st.integers(0, 1000))
def test_merge_associative_commutative_and_order_free(cuts, seed):
    df = _frame(600, seed)
    lo, hi = cuts
    parts = [
        DatasetProfile.from_frame(df.iloc[s], reference=REF, sketch=True)
        for s in (slice(0, lo), slice(lo, hi), slice(hi, None))
    ]
    whole = DatasetProfile.from_frame(df, reference=REF, sketch=True)
    shuffled = DatasetProfile.from_frame(df.sample(frac=1, random_state=seed), reference=REF)
    x, y, z = parts
    expected = _exact_parts(whole)
    assert _exact_parts((x + y) + z) == expected
    assert _exact_parts(x + (y + z)) == expected
    assert _exact_parts(z + (y + x)) == expected
    assert _exact_parts(shuffled) == expected
    assert ((x + y) + z).columns["a"].sketch.n == whole.columns["a"].sketch.n


def test_merge_leaves_inputs_untouched():
    a = DatasetProfile.from_frame(_frame(100, 1), reference=REF)
    b = DatasetProfile.from_frame(_frame(100, 2), reference=REF)
    before = json.dumps(a.to_dict())
    _ = a + b
    assert json.dumps(a.to_dict()) == before and b.n_rows == 100


def test_merge_refuses_different_edges():
    a = DatasetProfile.from_frame(_frame(100, 1))
    b = DatasetProfile.from_frame(_frame(100, 2))
    with pytest.raises(ValueError, match="different bin edges"):
        _ = a + b


def test_roundtrip_bytes_and_json():
    p = DatasetProfile.from_frame(_frame(5000), reference=REF)
    back = DatasetProfile.from_bytes(p.to_bytes())
    assert json.loads(json.dumps(p.to_dict())) == back.to_dict()
    assert back.get() == p.get()
    assert len(p.to_bytes()) < 40_000
    with pytest.raises(DataError, match=r"not from DatasetProfile\.to_bytes"):
        DatasetProfile.from_bytes(b"garbage")
    with pytest.raises(DataError, match="not a loopml profile"):
        DatasetProfile.from_dict({"format": "other"})


def test_categorical_cap_folds_into_other_and_estimates_distinct():
    values = pa.array([f"id{i}" for i in range(5000)] + ["common"] * 100)
    prof = CategoricalProfile(cap=50).update(values)
    assert len(prof.counts) == 50 and prof.counts["common"] == 100
    assert prof.frequencies()[OTHER] == 5100 - sum(prof.counts.values())
    assert abs(prof.distinct - 5001) <= 3 * prof.hll.relative_error * 5001
    small = CategoricalProfile().update(pa.array(["a", "b", "a", None]))
    assert small.distinct == 2 and small.nulls == 1


def test_reference_kinds_and_edges_are_reused():
    ref = DatasetProfile.from_frame(_frame(1000), kinds={"i": "categorical"})
    cur = DatasetProfile.from_frame(_frame(500, 3), reference=ref)
    assert isinstance(cur.columns["i"], CategoricalProfile)
    assert np.array_equal(cur.columns["a"].edges, ref.columns["a"].edges)
    assert set(cur.columns["i"].counts) <= {str(k) for k in range(7)}


def test_edges_have_tolerant_outer_bounds():
    x = np.random.default_rng(0).normal(size=100_000)
    prof = NumericProfile().update(x)
    lo, hi = prof.edges[0], prof.edges[-1]
    assert (
        lo < x.min() or hi > x.max() or (lo < np.quantile(x, 0.001) and hi > np.quantile(x, 0.999))
    )
    assert lo < np.quantile(x, 0.001) - 1 and hi > np.quantile(x, 0.999) + 1


def test_unprofilable_input_is_a_clear_error():
    with pytest.raises(DataError, match="pandas DataFrame or a pyarrow"):
        DatasetProfile.from_frame([[1, 2]])
    ref = DatasetProfile.from_frame(pd.DataFrame({"x": [1.0, 2.0]}))
    cur = DatasetProfile.from_frame(pd.DataFrame({"x": ["a", "b"]}), reference=ref)
    assert cur.columns["x"].kind == "categorical"  # kept as text so the schema check can flag it


def test_from_parquet_streams_in_column_groups_and_equals_from_frame(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from loopml.stats import parquet as parquet_module

    df = _frame(30_000, 5)
    path = tmp_path / "w.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=7_000)
    monkeypatch.setattr(parquet_module, "READ_BUDGET", 7_000 * 8)  # one column per read pass
    streamed = DatasetProfile.from_parquet(path, reference=REF, batch_size=4_000)
    whole = DatasetProfile.from_frame(df, reference=REF, threads=1)
    assert _exact_parts(streamed) == _exact_parts(whole)
    assert np.array_equal(streamed.columns["i"].fine_counts, whole.columns["i"].fine_counts)
    only = DatasetProfile.from_parquet(path, reference=REF, columns=["a"])
    assert list(only.columns) == ["a"] and only.n_rows == 30_000
    with pytest.raises(DataError, match="not in"):
        DatasetProfile.from_parquet(path, columns=["nope"])
    with pytest.raises(DataError, match="cannot read Parquet"):
        DatasetProfile.from_parquet(tmp_path / "missing.parquet")


def test_threaded_profiling_gives_the_same_profile():
    df = _frame(120_000, 6)
    one = DatasetProfile.from_frame(df, reference=REF, threads=1)
    two = DatasetProfile.from_frame(df, reference=REF, threads=2)
    assert _exact_parts(one) == _exact_parts(two)


def test_window_profiles_skip_the_sketch_unless_asked():
    win = DatasetProfile.from_frame(_frame(2000, 7), reference=REF)
    assert win.columns["a"].sketch is None and REF.columns["a"].sketch is not None
    assert (
        DatasetProfile.from_frame(_frame(2000, 7), reference=REF, sketch=True).columns["a"].sketch.n
        > 0
    )
    summary = win.get()["columns"]["a"]
    assert summary["rank_error"] < 0.05 and summary["quantiles"]["p50"] == pytest.approx(3, abs=0.3)


def test_prefetch_passes_items_in_order_and_reraises_reader_errors():
    from loopml.stats.parquet import prefetched

    def items():
        yield from range(5)
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for x in prefetched(items()):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]
    stream = prefetched(iter(range(1000)))
    assert next(stream) == 0
    stream.close()  # the reader thread stops instead of blocking on a full queue


def test_reference_from_parquet_takes_edges_from_data_not_the_empty_schema(tmp_path):
    """Regression: the empty schema table profiled first fixed every edge at 0."""
    import pyarrow.parquet as pq

    df = _frame(20_000, 8)
    path = tmp_path / "ref.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    ref = DatasetProfile.from_parquet(path)
    direct = DatasetProfile.from_frame(df.iloc[:65_536])
    assert np.array_equal(ref.columns["a"].fine_edges, direct.columns["a"].fine_edges)
    assert (
        len(ref.columns["a"].fine_edges) > 100
        and ref.columns["a"].sketch.n == df["a"].notna().sum()
    )
