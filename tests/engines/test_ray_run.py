"""``loopml run --engine ray``: the stability gate's seeds, the label gate's folds and permutation
importance run on Ray's workers and register what the local engine registers, number for
number; a worker never trains with another project's ``train.py`` of the same module name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopml.cli import main
from loopml.config import load_config
from loopml.engines import get_engine
from loopml.store import Store
from loopml.train import run

from .conftest import TRAIN_PY, frame

pytestmark = pytest.mark.ray

CONFIG = """\
project: rayrun
data: {train: data/train.parquet, target: label, id: id, segments: [cat]}
model: {name: rayrun, train: train.py:train}
gates:
  stability: {seeds: 3, min_slice_size: 50}
  labels: {n_folds: 3}
"""

# the same module name (train) in another project: a stronger penalty, so other models
OTHER_TRAIN_PY = TRAIN_PY.replace("LogisticRegression(max_iter=500)", "LogisticRegression(C=0.01)")

TIMINGS = {"train_seconds", "seconds"}  # wall clock: the one thing allowed to differ


def _project(root: Path, train_py: str) -> Path:
    (root / "data").mkdir(parents=True)
    frame(1200).to_parquet(root / "data" / "train.parquet")
    (root / "train.py").write_text(train_py)
    (root / "loopml.yaml").write_text(CONFIG)
    return root


def _registered(root: Path, engine_map) -> dict:
    cfg = load_config(root)
    store = Store(cfg.store_url)
    result = run(cfg, store=store, engine_map=engine_map)
    version = store.versions.get(result.version["id"])
    store.close()
    return version


def _untimed(value):
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def test_ray_registers_the_local_engines_gates_and_importances(tmp_path, ray_engine, capsys):
    local = _registered(_project(tmp_path / "local", TRAIN_PY), get_engine("local").map)
    root = _project(tmp_path / "ray", TRAIN_PY)
    # the command line, on the session's Ray (a started Ray is reused)
    assert main(["-c", str(root), "run", "--engine", "ray", "--cpus", "2", "--json"]) == 0
    version_id = json.loads(capsys.readouterr().out)["version"]
    on_ray = Store(load_config(root).store_url).versions.get(version_id)
    gates = {g["gate"]: g for g in local["gates"]}
    assert gates["stability"]["evidence"]["trainings"] == 2
    assert gates["labels"]["evidence"]["label_issues"]["n_folds"] == 3
    assert _untimed(on_ray["gates"]) == _untimed(local["gates"])  # exact, floats included
    assert on_ray["extra"]["importance"] == local["extra"]["importance"]
    assert on_ray["metrics"] == local["metrics"]


def test_the_two_projects_train_different_models_on_ray(tmp_path, ray_engine):
    """Guards against a reused worker keeping the first project's ``train`` module."""
    first = _registered(_project(tmp_path / "a", TRAIN_PY), ray_engine.map)
    second = _registered(_project(tmp_path / "b", OTHER_TRAIN_PY), ray_engine.map)
    overall = [
        {g["gate"]: g for g in v["gates"]}["stability"]["evidence"]["overall"]
        for v in (first, second)
    ]
    # logistic regression ignores the seed: every sibling scores as its own candidate
    assert len(set(overall[0])) == 1 and len(set(overall[1])) == 1
    assert overall[0][0] != overall[1][0]
