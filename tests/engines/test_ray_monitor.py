"""``loopml monitor --engine ray``: a window's parts scanned in blocks on Ray and merged on the
driver give the local engine's windows: equal row counts, histograms, verdicts and metrics."""

from __future__ import annotations

import pytest

from loopml.artifacts.store import ArtifactStore
from loopml.monitor import run_monitor
from loopml.stats import DatasetProfile

from ..monitor._log import T0
from ._windows import project_with_parts


def _windows(cfg, store, v):
    rows = store.monitoring.series("ep", version=v["id"], role="champion", until=T0 + 10 * 3600)
    full = [store.monitoring.window(r["id"]) for r in rows]
    arts = ArtifactStore(cfg.artifacts_root)
    profiles = [DatasetProfile.from_bytes(arts.get_bytes(w["profile"])) for w in full]
    return full, profiles


@pytest.mark.ray
def test_ray_monitor_equals_local(tmp_path, ray_engine):
    cfg_l, store_l, v = project_with_parts(tmp_path, "local")
    cfg_r, store_r, _ = project_with_parts(tmp_path, "ray")
    now = T0 + 24 * 3600
    local = run_monitor(cfg_l, store_l, now=now)
    on_ray = run_monitor(cfg_r, store_r, now=now, engine=ray_engine)
    assert local["endpoints"]["ep"]["computed"] == on_ray["endpoints"]["ep"]["computed"] == 2
    (wl, pl), (wr, pr) = _windows(cfg_l, store_l, v), _windows(cfg_r, store_r, v)
    assert [w["rows"] for w in wl] == [w["rows"] for w in wr] == [4500, 4500]
    for a, b in zip(pl, pr, strict=True):
        assert a.n_rows == b.n_rows
        assert a.columns.keys() == b.columns.keys()
        for name, col in a.columns.items():
            da, db = col.to_dict(), b.columns[name].to_dict()
            for key in (
                "counts",
                "fine_counts",
                "nulls",
                "count",
                "n_inf",
                "min",
                "max",
                "other",
                "hll",
            ):
                if key in da:
                    assert da[key] == db[key], (name, key)  # exact
            if "mean" in da:  # floating sums in another order
                assert da["mean"] == pytest.approx(db["mean"], rel=1e-12)
                assert da["m2"] == pytest.approx(db["m2"], rel=1e-9)
    for a, b in zip(wl, wr, strict=True):
        for key in (
            "rows",
            "labels",
            "drifted",
            "n_drifted",
            "quality_errors",
            "quality_warnings",
            "errors",
        ):
            assert a[key] == b[key], key
        for key in (
            "performance",
            "estimated_performance",
            "accuracy",
            "drift_score",
            "prediction_drift",
        ):
            if a[key] is None or b[key] is None:  # e.g. an estimate withheld as unreliable
                assert a[key] is b[key] is None, key
            else:
                assert a[key] == pytest.approx(b[key], rel=1e-9, nan_ok=True), key
        # latency quantiles come from a KLL sketch: merged sketches agree within its rank error
        assert a["latency_p50"] == pytest.approx(b["latency_p50"], rel=0.05)
    assert sum(a["drifted"] or 0 for a in wl) >= 1  # the shifted hour is caught by both


def _verdicts(section):
    if isinstance(section, dict):
        return {k: _verdicts(v) for k, v in section.items() if not isinstance(v, float)}
    if isinstance(section, list):
        return [_verdicts(v) for v in section]
    return section
