"""A model class of the user's own, defined in train.py: a stable import name that
model.trusted_types can name, importable by `loopml serve` (a fresh process), and a refused
artifact that still records the run and its verdicts."""

from __future__ import annotations

import json

import httpx
from tests.conftest import make_project, synthetic_frame
from tests.serve.serve_helpers import free_port, start_subprocess

from loopml.cli import main
from loopml.data.sources import module_name

TRAIN = """\
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression


class Shrunk(ClassifierMixin, BaseEstimator):
    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        self.inner_ = LogisticRegression(C=self.C, max_iter=500).fit(X, y)
        self.classes_ = self.inner_.classes_
        return self

    def predict(self, X):
        return self.inner_.predict(X)

    def predict_proba(self, X):
        return self.inner_.predict_proba(X)


def train(X, y, params, seed=0):
    return Shrunk().fit(X, y)
"""

CONFIG = """\
project: own
data: {train: data/train.parquet, target: label, features: [x0, x1, x2]}
model: {name: own, train: train.py:train%s}
gates: {metrics: {accuracy: '>= 0.6'}}
deploy: {endpoint: own}
"""


def _project(tmp_path, trusted: str = ""):
    root = make_project(tmp_path / "own", config=CONFIG % trusted, frame=synthetic_frame(1500))
    (root / "train.py").write_text(TRAIN)
    return root


def test_project_modules_get_stable_import_names(tmp_path):
    """Regression: train.py was imported as loopml_user_train_<hash(path)>, and hash()
    changes every run, so no trusted_types entry could name its classes."""
    (tmp_path / "models").mkdir()
    assert module_name(tmp_path / "train.py", tmp_path) == "train"
    assert module_name(tmp_path / "models" / "rank.py", tmp_path) == "models.rank"
    outside = module_name(tmp_path / "my-file.py", tmp_path / "models")
    assert outside.startswith("loopml_user_my_file_") and outside == module_name(
        tmp_path / "my-file.py", tmp_path / "models"
    )


def test_untrusted_own_class_is_rejected_with_its_verdicts_kept(tmp_path, capsys):
    """Regression: a refused artifact lost the whole run, gate verdicts included."""
    root = _project(tmp_path)
    assert main(["-c", str(root), "run", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    gates = {g["gate"]: g for g in result["gates"]}
    assert gates["metrics"]["verdict"] == "pass"
    assert gates["artifact"]["verdict"] == "fail" and "train.Shrunk" in gates["artifact"]["message"]
    assert main(["-c", str(root), "versions", "--json"]) == 0
    [v] = json.loads(capsys.readouterr().out)
    assert v["status"] == "rejected" and {g["gate"] for g in v["gates"]} == {
        "split",
        "metrics",
        "artifact",
    }


def test_trusted_own_class_registers_and_is_served_by_a_fresh_process(tmp_path, capsys):
    """Regression: the registered version could not be imported by `loopml serve`
    ("No module named ...", reported as "not a skops model")."""
    root = _project(tmp_path, ", trusted_types: [train.Shrunk]")
    assert main(["-c", str(root), "run"]) == 0
    assert main(["-c", str(root), "deploy", "own", "1"]) == 0
    port = free_port()
    proc = start_subprocess(root, port, "--no-auth")
    try:
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/endpoints/own/predict",
            json={"rows": [{"x0": 1.0, "x1": -1.0, "x2": 0.0}]},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == [1]
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_missing_module_is_reported_as_such(tmp_path, monkeypatch):
    """Regression: a class whose module could not be imported was reported as "not a skops
    model, or written by an incompatible version"."""
    import sys

    import pytest

    from loopml.artifacts.formats import load_model, save_model
    from loopml.errors import DataError

    (tmp_path / "gone_models.py").write_text(TRAIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    import gone_models  # type: ignore[import-not-found]

    frame = synthetic_frame(300)
    model = gone_models.Shrunk().fit(frame[["x0", "x1"]], frame["label"])
    data = save_model(model, "skops")
    monkeypatch.delitem(sys.modules, "gone_models")
    sys.path.remove(str(tmp_path))
    with pytest.raises(DataError, match="No module named 'gone_models'") as err:
        load_model(data, "skops", trusted_types=["gone_models.Shrunk"])
    assert (
        "cannot be imported" in err.value.message and "not a skops model" not in err.value.message
    )
