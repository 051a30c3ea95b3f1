"""``loopml init --data FILE --target COLUMN``: a project on the user's own data that runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from loopml.cli import main
from loopml.config import load_config


def _messy_classification(path) -> None:
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True)
    frame = wine.frame.copy()
    frame["target"] = np.array(wine.target_names)[wine.target]  # string classes
    rng = np.random.default_rng(0)
    frame["tasted"] = pd.date_range("2024-01-01", periods=len(frame), freq="D")  # not a feature
    frame["colour"] = rng.choice(np.array(["red", "white", None], dtype=object), len(frame))
    frame["alcohol"] = frame["alcohol"].mask(rng.random(len(frame)) < 0.1)  # NaNs
    frame["grower"] = rng.choice(["a", "b"], len(frame))
    frame.to_parquet(path)


def test_init_on_own_classification_data_runs_and_registers(tmp_path, capsys):
    data = tmp_path / "wine.parquet"
    _messy_classification(data)
    project = tmp_path / "wine"
    assert main(["init", str(project), "--data", str(data), "--target", "target"]) == 0
    out = capsys.readouterr().out
    assert "task: classification" in out and "tasted" in out  # the date column is left out
    cfg = load_config(project)
    assert cfg.data.task == "classification" and cfg.data.drop == ["tasted"]
    assert main(["-c", str(project), "run", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] and result["version"] == 1
    assert result["metrics"]["accuracy"] > 0.8


def test_init_on_own_regression_csv_runs_with_an_r2_gate(tmp_path, capsys):
    from sklearn.datasets import load_diabetes

    data = tmp_path / "diabetes.csv"
    load_diabetes(as_frame=True).frame.to_csv(data, index=False)
    project = tmp_path / "diabetes"
    assert main(["init", str(project), "--data", str(data), "--target", "target"]) == 0
    assert "first gate: r2 >= 0" in capsys.readouterr().out
    cfg = load_config(project)
    assert cfg.data.task == "regression"
    assert main(["-c", str(project), "run", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    gate = next(g for g in result["gates"] if g["gate"] == "metrics")
    assert gate["verdict"] == "pass" and "r2" in gate["message"]


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--target", "nope"], "--target names ['nope']"),
        (["--target", "target", "--sensitive", "sex"], "--sensitive names ['sex']"),
        ([], "needs --target"),
    ],
)
def test_init_errors_name_the_option(tmp_path, capsys, args, expect):
    data = tmp_path / "d.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "target": [0, 1, 0]}).to_csv(data, index=False)
    assert main(["init", str(tmp_path / "p"), "--data", str(data), *args]) == 2
    assert expect in capsys.readouterr().err
    assert not (tmp_path / "p" / "loopml.yaml").exists()


def test_first_gate_is_measured_on_the_test_split_with_a_metric_for_imbalance(tmp_path, capsys):
    """Regression: the first gate was the majority-class accuracy of the whole file (0.772, the
    test split's was 0.759), the wrong bar on imbalanced data; and labels printed as
    np.int64(0)."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 30]]
    frame.columns = ["radius", "texture", "perimeter", "target"]
    frame = frame.sort_values("radius").reset_index(drop=True)
    frame["day"] = np.arange(len(frame))  # the latest rows are the largest tumours
    data = tmp_path / "cancer.csv"
    frame.to_csv(data, index=False)
    project = tmp_path / "p"
    args = ["init", str(project), "--data", str(data), "--target", "target", "--time", "day"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "first gate: roc_auc >= 0.60" in out and "np.int64" not in out
    test_share = (frame["target"].iloc[455:] == 0).mean()  # the newest 20% (by day)
    assert f"always answering 0 is right {test_share:.1%}" in out
    text = (project / "loopml.yaml").read_text()
    assert "roc_auc" in text and "np.int64" not in text
