"""Honest splits: a test split holding one class is "not judged" (and blocks) with the reason;
a test split whose target mix differs strongly from training's is warned about."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

from loopml.cli import main

TRAIN = """\
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def train(X, y, params, seed=0):
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
"""


def _project(tmp_path, order: np.ndarray):
    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, 30]]
    frame.columns = ["radius", "texture", "perimeter", "area", "target"]
    frame = frame.iloc[order].reset_index(drop=True)
    frame["day"] = np.arange(len(frame))
    root = tmp_path / "p"
    (root / "data").mkdir(parents=True)
    frame.to_parquet(root / "data/train.parquet")
    (root / "train.py").write_text(TRAIN)
    (root / "loopml.yaml").write_text(
        "project: p\ndata: {train: data/train.parquet, target: target, time: day}\n"
        "model: {name: p, train: train.py:train}\ngates: {metrics: {accuracy: '>= 0.5'}}\n"
    )
    return root, frame


def test_a_one_class_test_split_is_not_judged_and_blocks(tmp_path, capsys):
    """Regression: a time split whose test rows were all one class gave no AUC and no gate
    said so."""
    y = load_breast_cancer().target
    root, _ = _project(tmp_path, np.argsort(y, kind="stable"))  # the latest rows are all 1
    assert main(["-c", str(root), "run", "--json"]) == 1
    split = json.loads(capsys.readouterr().out)["gates"][0]
    assert split["gate"] == "split" and split["verdict"] == "insufficient_data"
    assert split["blocking"] and "holds only the class 1" in split["message"]
    assert "data.test_from" in split["message"]


def test_a_shifted_test_split_is_warned_about(tmp_path, capsys):
    y = load_breast_cancer().target
    rng = np.random.default_rng(0)
    # positives drift late: the newest fifth is 89% positive, training 56%
    order = np.argsort(np.where(y == 1, rng.random(len(y)) + 0.2, rng.random(len(y))))
    root, _ = _project(tmp_path, order)
    assert main(["-c", str(root), "run"]) == 0
    out = capsys.readouterr().out
    assert "split:" in out and "differ strongly from training" in out
    assert main(["-c", str(root), "versions", "--json"]) == 0
    [v] = json.loads(capsys.readouterr().out)
    split = next(g for g in v["gates"] if g["gate"] == "split")
    assert split["verdict"] == "pass" and "Warning" in split["message"]


def test_a_balanced_split_has_no_warning(tmp_path, capsys):
    root, _ = _project(tmp_path, np.random.default_rng(1).permutation(569))
    assert main(["-c", str(root), "run", "--json"]) == 0
    split = json.loads(capsys.readouterr().out)["gates"][0]
    assert split["verdict"] == "pass" and "Warning" not in split["message"]
    assert not pd.isna(split["evidence"]["shift"])
