"""Profiling a Parquet file in blocks on an engine equals one streamed pass
(``DatasetProfile.from_parquet``): counts exactly, moments up to rounding, sketches within
their rank error; the Ray engine equals the local one bit for bit (but for the sketches, whose
compaction is randomised)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.engines.profiling import profile_parquet
from loopml.stats import DatasetProfile

EXACT = (
    "count",
    "nulls",
    "n_inf",
    "min",
    "max",
    "edges",
    "fine_edges",
    "fine_counts",
    "counts",
    "other",
    "hll",
)


@pytest.fixture
def parquet(tmp_path):
    rng = np.random.default_rng(3)
    n = 150_000
    x = rng.lognormal(size=n)
    x[rng.random(n) < 0.05] = np.nan
    table = pa.table(
        {
            "x": x,
            "y": rng.normal(size=n) * 3 + 1,
            "k": pa.array(rng.integers(0, 50, n), pa.int64()),
            "city": pa.array(rng.choice(["berlin", "paris", "rome", None], n)),
        }
    )
    path = tmp_path / "data.parquet"
    pq.write_table(table, path, row_group_size=20_000)
    return path


def _check(streamed: DatasetProfile, blocks: DatasetProfile) -> None:
    assert streamed.n_rows == blocks.n_rows
    assert streamed.columns.keys() == blocks.columns.keys()
    for name, col in streamed.columns.items():
        a, b = col.to_dict(), blocks.columns[name].to_dict()
        for key in EXACT:
            if key in a:
                assert a[key] == b[key], (name, key)
        if a.get("mean") is not None:
            assert a["mean"] == pytest.approx(b["mean"], rel=1e-12)
            assert a["m2"] == pytest.approx(b["m2"], rel=1e-9)
        if a.get("sketch") and name != "k":  # ranks of a discrete column's quantiles jump
            ranks = np.linspace(0.05, 0.95, 19)
            qa = col.sketch.quantiles(ranks)
            cdf = blocks.columns[name].sketch.cdf(np.sort(qa))
            err = 2 * col.sketch.rank_error
            assert np.all(np.abs(cdf - ranks) <= err + 1e-9), name


def test_blocks_on_the_local_engine_equal_one_streamed_pass(parquet):
    streamed = DatasetProfile.from_parquet(parquet)
    blocks = profile_parquet(str(parquet), engine="local", rows_per_block=40_000)
    _check(streamed, blocks)


def test_blocks_against_a_reference_equal_one_streamed_pass(parquet, tmp_path):
    rng = np.random.default_rng(9)
    ref = DatasetProfile.from_frame(
        pa.table(
            {
                "x": rng.lognormal(size=5000),
                "y": rng.normal(size=5000),
                "k": pa.array(rng.integers(0, 50, 5000)),
                "city": pa.array(rng.choice(["berlin", "paris"], 5000)),
            }
        )
    )
    streamed = DatasetProfile.from_parquet(parquet, ref)
    blocks = profile_parquet(str(parquet), engine="local", reference=ref, rows_per_block=40_000)
    _check(streamed, blocks)


@pytest.mark.ray
def test_ray_profile_equals_the_local_engines_bit_for_bit(parquet, ray_engine):
    local = profile_parquet(str(parquet), engine="local", rows_per_block=40_000)
    on_ray = profile_parquet(str(parquet), engine=ray_engine, rows_per_block=40_000)
    a, b = local.to_dict(), on_ray.to_dict()
    for name in a["columns"]:  # KLL compaction flips a random coin: sketches within error
        a["columns"][name].pop("sketch", None)
        b["columns"][name].pop("sketch", None)
    assert a == b  # everything else bit for bit, floating sums included
    _check(local, on_ray)
