"""A model trained WITHOUT the sensitive attribute, served with it as a context column on the
real server: the monitor reports fairness for it (issue 13 acceptance)."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pandas as pd
import serve_helpers as h

from tests.conftest import make_project, run_project

TRAIN_PY = """
from sklearn.linear_model import LogisticRegression


def train(X, y, params, seed=0):
    return LogisticRegression().fit(X, y)
"""

CONFIG = """\
project: fairctx
data: {train: data/train.parquet, target: label, id: id, sensitive: [sex], drop: [sex]}
model: {name: fairctx, train: train.py:train}
gates: {champion: {blocking: false}, fairness: {blocking: false}}
deploy: {endpoint: fair}
monitor: {min_window_rows: 50, min_group_size: 10}
"""


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(rng.normal(size=(n, 3)), columns=["x0", "x1", "x2"])
    out["sex"] = rng.choice(["F", "M"], size=n)
    # the outcome depends on the attribute, through a feature the model sees
    out["x0"] += np.where(out["sex"] == "M", 0.8, -0.8)
    out["label"] = (out["x0"] + rng.normal(scale=0.5, size=n) > 0).astype(int)
    out["id"] = np.arange(n)
    return out


def test_fairness_over_time_for_attributes_the_model_never_saw(tmp_path):
    from loopml.monitor import run_monitor
    from loopml.monitor.queries import window_detail
    from loopml.serve import Settings

    root = make_project(tmp_path / "proj", config=CONFIG, frame=_frame(2000, 0), train_py=TRAIN_PY)
    cfg, store, result = run_project(root)
    version = result.version
    assert "sex" not in [c["name"] for c in version["signature"]["columns"]]
    store.endpoints.deploy("fair", version, actor="test")
    key = store.keys.create("labeller", actor="test")[0]

    live = _frame(400, 1)
    settings = Settings.from_config(cfg, poll_seconds=0.05, access_log=False)
    assert "sex" in settings.context_columns
    with (
        h.thread_server(settings) as (url, _app),
        httpx.Client(base_url=url, headers=h.bearer(key), timeout=30) as c,
    ):
        ids: list[str] = []
        for chunk in np.array_split(np.arange(len(live)), 20):
            rows = live.iloc[chunk].drop(columns=["label"]).to_dict(orient="records")
            r = c.post("/v1/endpoints/fair/predict", json={"rows": rows})
            assert r.status_code == 200, r.text
            ids += r.json()["request_ids"]
        labels = [
            {"request_id": rid, "label": int(y)} for rid, y in zip(ids, live["label"], strict=True)
        ]
        r = c.post("/v1/labels", json={"labels": labels})
        assert r.status_code == 200 and r.json()["accepted"] == len(live), r.text
    summary = run_monitor(cfg, store, now=time.time() + 3 * 3600)
    assert summary["endpoints"]["fair"]["computed"] >= 1
    rows = store.monitoring.series("fair")
    detail = window_detail(store, rows[-1]["id"])["results"]
    fairness = detail["fairness"]
    assert fairness["sensitive"] == ["sex"]
    groups = {g["group"] for g in fairness["labelled"]["groups"]}
    assert groups == {"sex=F", "sex=M"}
    # the selection ratio matches the log's own rows: min/max of the positive rate per group
    sel = fairness["selection"]
    assert 0 < sel["ratio"] < 0.8  # the model's outcomes differ by the attribute it never saw
    store.close()
