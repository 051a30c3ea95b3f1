"""`loopml run` on data unlike the employment example: regression, string and bool labels,
dates, plain estimators, models without predict_proba. Each test guards one bug found by
running real projects built from scikit-learn's bundled data sets or messy synthetic frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from tests.conftest import make_project, synthetic_frame

from loopml.cli import main
from loopml.config import load_config
from loopml.errors import ConfigError, DataError, TrainingError
from loopml.train import run

MODELS = """\
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


def numeric(X):
    return X.select_dtypes("number").fillna(0)


def logistic(X, y, params, seed=0):
    return LogisticRegression(max_iter=1000).fit(X, y)


def ridge(X, y, params, seed=0):
    return Ridge().fit(X, y)


def ridge_classifier(X, y, params, seed=0):
    return Pipeline([("impute", SimpleImputer()), ("m", RidgeClassifier())]).fit(X, y)


def fitted_on_cleaned_copy(X, y, params, seed=0):
    return LogisticRegression().fit(numeric(X), y)
"""


def _project(root: Path, frame: pd.DataFrame, data: str, model: str, extra: str = "") -> Path:
    config = f"project: robust\ndata: {data}\nmodel: {model}\ndeploy: {{endpoint: robust}}\n"
    make_project(root, config=config + extra, frame=frame)
    (root / "models.py").write_text(MODELS)
    return root


def _diabetes(as_int: bool = False) -> pd.DataFrame:
    frame = load_diabetes(as_frame=True).frame
    if as_int:
        frame["target"] = frame["target"].astype(int)
    return frame


def test_integer_regression_target_is_read_as_regression(tmp_path, capsys):
    """An integer target with hundreds of values (prices, counts) was taken for classification
    and the run crashed computing classification metrics of a regressor."""
    root = _project(
        tmp_path / "p",
        _diabetes(as_int=True),
        "{train: data/train.parquet, target: target}",
        "{name: robust, train: models.py:ridge}",
        "gates: {metrics: {thresholds: {r2: '>= 0.2'}}}\n",
    )
    assert main(["-c", str(root), "run"]) == 0
    capsys.readouterr()
    assert main(["-c", str(root), "versions", "--json"]) == 0
    (v,) = json.loads(capsys.readouterr().out)
    assert v["metrics"]["r2"] > 0.2 and "accuracy" not in v["metrics"]


def test_versions_table_shows_regression_metrics(tmp_path, capsys):
    """`loopml versions` showed empty accuracy and roc_auc columns for a regression model."""
    root = _project(
        tmp_path / "p",
        _diabetes(),
        "{train: data/train.parquet, target: target}",
        "{name: robust, train: models.py:ridge}",
    )
    assert main(["-c", str(root), "run"]) == 0
    capsys.readouterr()
    assert main(["-c", str(root), "versions"]) == 0
    out = capsys.readouterr().out
    assert "r2" in out and "rmse" in out and "accuracy" not in out


def _diabetes_as_classes() -> pd.DataFrame:
    frame = _diabetes()
    frame["target"] = (frame["target"] // 100).astype(int)  # 4 values: read as classes
    return frame


def _missing_x0() -> pd.DataFrame:
    frame = synthetic_frame(n=300)
    frame.loc[::7, "x0"] = np.nan
    return frame


REFUSED = [
    # A regressor trained on a target read as classification crashed in the metrics; the
    # error must say how the task was chosen and which key changes it.
    pytest.param(
        _diabetes_as_classes,
        "{train: data/train.parquet, target: target}",
        "{name: robust, train: models.py:ridge}",
        "",
        TrainingError,
        r"returned a regressor .*data\.task",
        id="regressor_for_a_classification_task_names_data_task",
    ),
    # `r2` in gates.metrics on a target read as classification only listed the valid
    # classification metrics, leaving the user to guess why.
    pytest.param(
        _diabetes_as_classes,
        "{train: data/train.parquet, target: target}",
        "{name: robust, train: models.py:ridge}",
        "gates: {metrics: {r2: '>= 0.2'}}\n",
        ConfigError,
        r"inferred as classification .*set data\.task",
        id="regression_metric_gate_on_misread_task_says_how_the_task_was_chosen",
    ),
    # data.features holding the target failed late with 'duplicate column names'.
    pytest.param(
        lambda: synthetic_frame(n=300),
        "{train: data/train.parquet, target: label, features: [x0, label]}",
        "{name: robust, train: models.py:logistic}",
        "",
        DataError,
        "lists the target 'label'",
        id="target_listed_in_features_is_refused",
    ),
    # A model fitted on a cleaned copy of X raised scikit-learn's bare ValueError (with a
    # traceback) when loopml predicted the held-out rows.
    pytest.param(
        _missing_x0,
        "{train: data/train.parquet, target: label, id: id}",
        "{name: robust, train: models.py:fitted_on_cleaned_copy}",
        "",
        TrainingError,
        r"cannot predict the held-out rows.*inside the returned",
        id="model_that_cannot_predict_its_inputs_gets_an_explained_error",
    ),
]


@pytest.mark.parametrize("frame, data, model, extra, error, match", REFUSED)
def test_project_the_run_cannot_serve_is_refused_with_the_reason(
    tmp_path, frame, data, model, extra, error, match
):
    root = _project(tmp_path / "p", frame(), data, model, extra)
    with pytest.raises(error, match=match):
        run(load_config(root))


def test_datetime_feature_is_refused_before_the_run(tmp_path):
    """A datetime feature crashed registration (Timestamp is not JSON serialisable) after
    training, leaving a failed run and a traceback."""
    frame = synthetic_frame(n=400)
    frame["signup"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(400), unit="h")
    root = _project(
        tmp_path / "p",
        frame,
        "{train: data/train.parquet, target: label, id: id}",
        "{name: robust, train: train.py:train}",
    )
    with pytest.raises(DataError, match=r"\['signup'\] hold dates .*data\.time.*data\.drop"):
        run(load_config(root))
    # named as the time column, it splits the data instead and the run registers
    text = (root / "loopml.yaml").read_text().replace("id: id}", "id: id, time: signup}")
    (root / "loopml.yaml").write_text(text)
    assert run(load_config(root)).passed


def test_probability_metric_gate_fails_for_a_model_without_predict_proba(tmp_path):
    """`roc_auc >= 0.8` on a RidgeClassifier was 'undefined on this data' and the version
    was registered without the threshold ever being checked."""
    root = _project(
        tmp_path / "p",
        synthetic_frame(n=600),
        "{train: data/train.parquet, target: label, id: id, features: [x0, x1, x2]}",
        "{name: robust, train: models.py:ridge_classifier}",
        "gates: {metrics: {roc_auc: '>= 0.8'}}\n",
    )
    result = run(load_config(root))
    (_split, gate) = result.gates
    assert not result.passed and gate["verdict"] == "fail"
    assert "no predict_proba" in gate["message"] and "CalibratedClassifierCV" in gate["message"]


def test_default_champion_gate_works_for_a_model_without_predict_proba(tmp_path):
    """The champion gate's default metric (ROC AUC for a binary task) made it error on every
    run of a model without predict_proba, rejecting every challenger."""
    root = _project(
        tmp_path / "p",
        synthetic_frame(n=1000),
        "{train: data/train.parquet, target: label, id: id, features: [x0, x1, x2]}",
        "{name: robust, train: models.py:ridge_classifier}",
        "gates: {champion: {}}\n",
    )
    assert main(["-c", str(root), "run"]) == 0
    assert main(["-c", str(root), "deploy", "robust", "1"]) == 0
    result = run(load_config(root))
    (_split, gate) = result.gates
    assert result.passed and gate["verdict"] == "pass"
    assert gate["evidence"]["metric"] == "accuracy"


def test_string_positive_class_that_loopml_would_not_score_is_refused(tmp_path):
    """data.positive_class was ignored by training: metrics and fairness scored the other
    label as positive while the monitor used the configured one."""
    frame = synthetic_frame(n=400)
    frame["label"] = np.where(frame["label"] == 1, "approved", "denied")
    root = _project(
        tmp_path / "p",
        frame,
        "{train: data/train.parquet, target: label, id: id, positive_class: approved}",
        "{name: robust, train: train.py:train}",
    )
    with pytest.raises(ConfigError, match=r"positive_class is 'approved'.*'denied'"):
        run(load_config(root))
    text = (root / "loopml.yaml").read_text().replace("approved}", "nope}")
    (root / "loopml.yaml").write_text(text)
    with pytest.raises(ConfigError, match="not a label of the target"):
        run(load_config(root))
    text = (root / "loopml.yaml").read_text().replace("nope}", "denied}")
    (root / "loopml.yaml").write_text(text)
    result = run(load_config(root))
    assert result.version is not None and result.version["signature"]["classes"][1] == "denied"


def test_regression_config_errors_are_raised_before_training(tmp_path):
    """An INV test without score_tolerance and a fairness gate on a regression were found
    only after training (or never: fairness passed as 'insufficient data' forever)."""
    root = _project(
        tmp_path / "p",
        _diabetes(),
        "{train: data/train.parquet, target: target, sensitive: [sex]}",
        "{name: robust, train: models.py:ridge}",
        "gates: {behaviour: {tests: [{type: inv, perturbation: noise, columns: [age]}]}}\n",
    )
    store = root / ".loopml"
    with pytest.raises(ConfigError, match=r"tests\[0\] \(INV noise\).*score_tolerance"):
        run(load_config(root))
    (root / "loopml.yaml").write_text(
        (root / "loopml.yaml").read_text().split("gates:")[0] + "gates: {fairness: {}}\n"
    )
    with pytest.raises(ConfigError, match="judges classifiers; this task is a regression"):
        run(load_config(root))
    assert not (store / "loopml.db").exists()  # nothing was recorded


def test_small_test_set_says_which_option_to_change(tmp_path):
    """'held-out data has 36 rows (< 100).' did not say it was harmless or what to change."""
    root = _project(
        tmp_path / "p",
        synthetic_frame(n=150),
        "{train: data/train.parquet, target: label, id: id}",
        "{name: robust, train: train.py:train}",
        "gates: {metrics: {accuracy: '>= 0.5'}, champion: {}}\n",
    )
    assert main(["-c", str(root), "run"]) == 0
    assert main(["-c", str(root), "deploy", "robust", "1"]) == 0
    verdicts = {g["gate"]: g for g in run(load_config(root)).gates}
    assert "gates.champion.min_rows" in verdicts["champion"]["message"]
    assert "does not block" in verdicts["champion"]["message"]
