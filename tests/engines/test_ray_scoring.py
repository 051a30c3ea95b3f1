"""The Ray engine scores exactly what the local engine scores (model loaded once per actor)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.config import load_config
from loopml.scoring import score
from loopml.store import Store

from .conftest import frame

pytestmark = pytest.mark.ray


def test_ray_and_local_engines_give_the_same_output(project, ray_engine):
    root, _ = project
    data = frame(4000, seed=11).drop(columns=["label"])
    pq.write_table(
        pa.Table.from_pandas(data, preserve_index=False), root / "in.parquet", row_group_size=500
    )
    cfg = load_config(root)
    store = Store(cfg.store_url)
    local = score(
        cfg, store, "credit", str(root / "in.parquet"), str(root / "local"), chunk_rows=1000
    )
    on_ray = score(
        cfg,
        store,
        "credit",
        str(root / "in.parquet"),
        str(root / "ray"),
        chunk_rows=1000,
        engine=ray_engine,
    )
    assert (local.rows, local.chunks) == (on_ray.rows, on_ray.chunks) == (4000, 4)
    assert on_ray.engine == "ray"
    a = pq.read_table(root / "local").to_pandas()
    b = pq.read_table(root / "ray").to_pandas()
    cols = [c for c in a.columns if c != "request_id"]
    assert a[cols].equals(b[cols])  # bit for bit
    assert not set(a["request_id"]) & set(b["request_id"])


def test_map_keeps_the_order_of_items(ray_engine):
    got = list(ray_engine.map(_square_plus, range(50), shared=1))
    assert got == [i * i + 1 for i in range(50)]


def _square_plus(i: int, shared: int) -> int:
    return i * i + shared


def test_a_worker_error_reaches_the_driver_as_the_same_loopml_error(project, ray_engine):
    from loopml.errors import ValidationError

    root, _ = project
    data = frame(300, seed=1).drop(columns=["label"])
    data["f2"] = data["f2"].astype(str)
    data.loc[7, "f2"] = "oops"
    data.to_parquet(root / "bad.parquet")
    cfg = load_config(root)
    with pytest.raises(ValidationError, match="Chunk 0"):
        score(
            cfg,
            Store(cfg.store_url),
            "credit",
            str(root / "bad.parquet"),
            str(root / "o"),
            engine=ray_engine,
        )
    np.testing.assert_equal(1, 1)
