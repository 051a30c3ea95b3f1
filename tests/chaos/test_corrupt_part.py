"""Chaos: a corrupt Parquet part in the prediction log. The monitor skips it, names it as a
finding (the pass's summary and the window it belonged to), and computes every window from
the other parts: no crash, and no other row lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from loopml.monitor import run_monitor
from loopml.monitor.queries import timeseries, window_detail
from loopml.store import Store
from tests.monitor._log import T0, make_config, register, write_predictions

ROWS = 300  # per part; two parts per hour, three hours


def _log(tmp_path: Path, open_hour: bool = False):
    rng = np.random.default_rng(0)
    cfg = make_config(tmp_path, f"sqlite:///{tmp_path / 'loopml.db'}")
    store = Store(cfg.store_url)
    train = pd.DataFrame(rng.normal(size=(2000, 3)), columns=["x0", "x1", "x2"])
    pred = (train["x0"] > 0).astype(int).to_numpy()
    v = register(store, cfg, train.assign(y=pred), pred, pred.astype(float), metrics={})["id"]
    for hour in range(3):
        for _ in range(2):
            f = pd.DataFrame(rng.normal(size=(ROWS, 3)), columns=["x0", "x1", "x2"])
            write_predictions(
                cfg.artifacts_root,
                "ep",
                f,
                version=v,
                prediction=(f["x0"] > 0).astype(int).to_numpy(),
                ts=T0 + hour * 3600 + rng.uniform(0, 3600, ROWS),
            )
    parts = sorted(Path(cfg.artifacts_root).rglob("*.parquet"))
    assert len(parts) == 6
    return cfg, store, parts


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a half-written file: no footer


def _pages_damaged(path: Path) -> None:
    """Footer intact, a data page overwritten: only decoding the rows finds it."""
    data = bytearray(path.read_bytes())
    meta = pq.read_metadata(path)
    col = meta.row_group(0).column(meta.schema.to_arrow_schema().get_field_index("x1"))
    start = col.data_page_offset
    data[start : start + col.total_compressed_size] = b"\xff" * col.total_compressed_size
    path.write_bytes(bytes(data))
    with pytest.raises(Exception):  # noqa: B017 - the damage is real: pyarrow cannot read it
        pq.read_table(path)


@pytest.mark.parametrize("damage", [_truncated, _pages_damaged], ids=["footer", "pages"])
def test_a_corrupt_part_is_a_finding_and_the_other_parts_are_read(tmp_path, damage):
    cfg, store, parts = _log(tmp_path)
    bad = parts[2]  # the first part of the second hour
    damage(bad)
    summary = run_monitor(cfg, store, now=T0 + 3 * 3600)
    res = summary["endpoints"]["ep"]
    assert res["computed"] == 3, res  # every window, the damaged one's too
    assert list(res["corrupt_parts"]) == [str(bad)]
    assert bad.exists()  # left in place for the operator, never deleted by the monitor
    series = timeseries(store, "ep")
    # nothing else lost: every row of every readable part is counted
    assert series["rows"] == [2 * ROWS, ROWS, 2 * ROWS]
    second = window_detail(store, series["id"][1])["results"]
    assert list(second["corrupt_parts"]) == [str(bad)]
    assert any("could not be read" in n and str(bad) in n for n in second["notes"])
    assert "drift" in second  # the window is still judged from the part that was read
    for i in (0, 2):
        assert "corrupt_parts" not in window_detail(store, series["id"][i])["results"]
    # a rerun is idempotent; replacing the part with a good one recomputes its window
    assert run_monitor(cfg, store, now=T0 + 3 * 3600)["endpoints"]["ep"]["computed"] == 0
    good = parts[3].read_bytes()
    bad.write_bytes(good[:-1] + good[-1:])  # a readable copy of the other part of the hour
    again = run_monitor(cfg, store, now=T0 + 3 * 3600)["endpoints"]["ep"]
    assert again["computed"] == 1 and "corrupt_parts" not in again


def test_a_corrupt_part_in_an_open_window_is_skipped_too(tmp_path):
    cfg, store, parts = _log(tmp_path)
    _truncated(parts[4])  # the third hour, still open below
    res = run_monitor(cfg, store, now=T0 + 2.5 * 3600)["endpoints"]["ep"]
    assert res["computed"] == 2 and list(res["corrupt_parts"]) == [str(parts[4])]
    (open_window,) = res["provisional"]
    assert open_window["rows"] == ROWS
