"""A window scanned in blocks (one per part) and merged equals one scan of all its parts
(checked on the local engine, so it runs without Ray); sketches survive pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from loopml.engines import get_engine
from loopml.monitor.blocks import scan_blocks
from loopml.monitor.jobs import Pass
from loopml.monitor.windows import full_part, performance_part, scan
from loopml.stats.sketch import QuantileSketch

from ..monitor._log import T0
from ._windows import project_with_parts


def test_blocks_merge_to_the_single_scan(tmp_path):
    cfg, store, v = project_with_parts(tmp_path, "p")
    p = Pass(cfg, store)
    start, end = T0 + 3600, T0 + 7200
    found = p.logs.parts("predlog", "ep", ["2024030101"])
    parts = [p.logs.part(path, size, "2024030101") for path, size in found]
    assert len(parts) == 3
    lab = p.logs.labels([x for x, _ in p.logs.parts("labels", "ep", ["2024030101"])])
    one = scan(p.logs, parts, start, end, p.ref_of, cfg, lab)
    many = scan_blocks(
        get_engine("local"), p.logs, cfg.artifacts_root, parts, start, end, p.ref_of, cfg, lab
    )
    assert one.keys() == many.keys() == {(v["id"], "champion")}
    a, b = one[(v["id"], "champion")], many[(v["id"], "champion")]
    assert a.rows == b.rows == 4500
    assert a.perf.n_labelled == b.perf.n_labelled > 0
    np.testing.assert_array_equal(a.perf.labels_array(), b.perf.labels_array())
    assert a.estimate.n == b.estimate.n
    ca, cb = full_part(a, cfg, []), full_part(b, cfg, [])
    assert ca[0]["rows"] == cb[0]["rows"]
    assert ca[0]["n_drifted"] == cb[0]["n_drifted"]
    assert ca[0]["drift_score"] == pytest.approx(cb[0]["drift_score"], rel=1e-9)
    pa_, pb = performance_part(a, cfg), performance_part(b, cfg)
    for key, value in pa_[0].items():
        if isinstance(value, float):
            assert value == pytest.approx(pb[0][key], rel=1e-9, nan_ok=True), key
        else:
            assert value == pb[0][key], key


def test_quantile_sketch_pickles_to_the_same_sketch():
    s = QuantileSketch().update(np.random.default_rng(0).normal(size=10_000))
    t = pickle.loads(pickle.dumps(s))
    assert t.n == s.n and t.k == s.k
    ranks = np.linspace(0.01, 0.99, 9)
    np.testing.assert_array_equal(t.quantiles(ranks), s.quantiles(ranks))
