"""The profile's row sample: uniform, bounded, the same rows however the data is fed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.stats import DatasetProfile
from loopml.stats.reservoir import RowSample, position_keys


def _frame(n, rng):
    return pd.DataFrame(
        {
            "i": np.arange(n, dtype=float),
            "x": rng.normal(size=n),
            "c": rng.choice(["a", "b", "c"], n),
        }
    )


def test_keys_are_uniform_and_depend_on_position_only():
    keys = position_keys(0, 200_000)
    assert position_keys(1000, 5).tolist() == keys[1000:1005].tolist()
    hist = np.histogram(keys, bins=20, range=(0, 1))[0]
    assert abs(hist / len(keys) - 0.05).max() < 0.003  # KS-like check against U(0, 1)
    assert keys.min() >= 0 and keys.max() < 1


def test_sample_is_bounded_uniform_and_the_same_in_batches_or_whole():
    rng = np.random.default_rng(0)
    df = _frame(50_000, rng)
    whole = DatasetProfile.from_frame(df, sample_rows=1000).sample
    batched = DatasetProfile.from_frame(df.iloc[:7000], sample_rows=1000)
    for start in range(7000, 50_000, 9000):
        batched.update(df.iloc[start : start + 9000])
    assert whole.n == 1000 and whole.seen == 50_000
    assert batched.sample.to_dict() == whole.to_dict()
    picked = whole.to_pandas()
    # the chosen rows are the frame's own rows, spread over the whole frame
    assert (df.set_index("i").loc[picked["i"], "x"].to_numpy() == picked["x"].to_numpy()).all()
    assert abs(picked["i"].mean() / 50_000 - 0.5) < 0.03
    assert set(picked["c"]) == {"a", "b", "c"}


def test_from_parquet_in_column_groups_picks_the_same_rows(tmp_path, monkeypatch):
    import loopml.stats.parquet as parquet

    rng = np.random.default_rng(1)
    df = _frame(30_000, rng)
    path = tmp_path / "f.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=8000)
    monkeypatch.setattr(parquet, "READ_BUDGET", 1)  # one column per pass
    streamed = DatasetProfile.from_parquet(path, batch_size=5000).sample
    assert streamed.to_dict() == DatasetProfile.from_frame(df).sample.to_dict()


def test_merge_keeps_the_smallest_keys_and_roundtrips():
    rng = np.random.default_rng(2)
    a = DatasetProfile.from_frame(_frame(3000, rng), sample_rows=500)
    b = DatasetProfile.from_frame(_frame(4000, rng), reference=a, sample_rows=500)
    merged = (a + b).sample
    assert merged.n == 500 and merged.seen == 7000
    assert merged.keys.tolist() == sorted(np.r_[a.sample.keys, b.sample.keys])[:500]
    back = DatasetProfile.from_bytes((a + b).to_bytes()).sample
    assert back.to_dict() == merged.to_dict()
    assert RowSample.from_dict(merged.to_dict()).to_pandas().shape == (500, 3)


@pytest.mark.parametrize("n", [0, 10])
def test_small_frames_keep_every_row(n):
    df = _frame(n, np.random.default_rng(3))
    s = DatasetProfile.from_frame(df).sample
    assert s.n == n and sorted(s.to_pandas()["i"]) == list(range(n)) if n else s.n == 0
