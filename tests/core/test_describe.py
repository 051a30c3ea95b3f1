"""``loopml describe``: inputs, outputs, traffic and a curl per protocol that a real server
answers, on a classifier with categorical inputs and on a regression."""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from loopml.cli import NOT_FOUND, main


def _wine(path) -> None:
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True)
    frame = wine.frame.copy()
    frame["target"] = np.array(wine.target_names)[wine.target]  # string classes
    rng = np.random.default_rng(0)
    frame["colour"] = rng.choice(["red", "white", "rosé"], len(frame))
    frame["grower"] = rng.choice(["a", "b"], len(frame))
    frame.to_parquet(path)


def _diabetes(path) -> None:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    frame["clinic"] = np.where(np.arange(len(frame)) % 3 == 0, "north", "south")
    frame.to_csv(path, index=False)


def _project(tmp_path, capsys, name: str, make) -> str:
    data = tmp_path / f"{name}.data"
    data = data.with_suffix(".parquet" if name == "wine" else ".csv")
    make(data)
    project = str(tmp_path / name)
    assert main(["init", project, "--data", str(data), "--target", "target"]) == 0
    assert main(["run", "-c", project]) == 0
    assert main(["deploy", name, "1", "-c", project]) == 0
    capsys.readouterr()
    return project


def _describe(capsys, project: str, *args: str) -> dict:
    assert main(["describe", *args, "--json", "-c", project]) == 0
    return json.loads(capsys.readouterr().out)


def _answers(project: str, d: dict, capsys) -> dict[str, dict]:
    """Run each example curl, as printed, against the real server; the JSON answers."""
    from loopml.config import load_config
    from loopml.serve.settings import Settings
    from loopml.server import compose, serve_in_thread
    from loopml.store import Store

    cfg = load_config(project)
    key, _ = Store(cfg.store_url).keys.create("predictor", name="test", actor="test")
    bg = serve_in_thread(compose(cfg, Settings.from_config(cfg, access_log=False)))
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{bg.url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert main(["describe", d["endpoint"], "--json", "--url", bg.url, "-c", project]) == 0
        examples = json.loads(capsys.readouterr().out)["examples"]
        out = {}
        for ex in examples:
            res = subprocess.run(
                ["bash", "-c", ex["curl"] + " -w '\\n%{http_code}'"],
                env={**os.environ, "LOOPML_KEY": key},
                capture_output=True,
                text=True,
                timeout=60,
            )
            body, code = res.stdout.rsplit("\n", 1)
            assert code == "200", f"{ex['protocol']}: HTTP {code}: {body}"
            out[ex["protocol"]] = json.loads(body)
        return out
    finally:
        bg.stop()


@pytest.mark.slow
def test_describe_a_classifier_with_categorical_inputs(tmp_path, capsys):
    project = _project(tmp_path, capsys, "wine", _wine)
    d = _describe(capsys, project, "wine")
    inputs = {c["name"]: c for c in d["inputs"]}
    assert inputs["colour"]["type"] == "category"
    assert sorted(inputs["colour"]["categories"]) == ["red", "rosé", "white"]
    assert inputs["alcohol"]["type"] == "number"
    frame = pd.read_parquet(tmp_path / "wine.parquet")
    lo, hi = inputs["alcohol"]["range"]  # the range seen in training, not a padded one
    assert frame["alcohol"].min() <= lo <= hi <= frame["alcohol"].max()
    assert "target" not in inputs
    assert d["outputs"][0]["classes"] == ["class_0", "class_1", "class_2"]
    assert d["traffic"] == [{"version": 1, "role": "champion", "share": 100.0}]
    assert {e["protocol"] for e in d["examples"]} == {"loopml", "mlflow", "v2"}
    assert all(e["curl"].startswith("curl ") for e in d["examples"])
    # the same version by its id, and the text form names the columns and protocols
    assert _describe(capsys, project, "1")["inputs"] == d["inputs"]
    assert main(["describe", "wine", "-c", project]) == 0
    text = capsys.readouterr().out
    assert "one of a, b" in text and "MLflow" in text and "KServe V2" in text
    assert max(len(line) for line in text.split("\n# ")[0].splitlines()) <= 80

    answers = _answers(project, d, capsys)
    assert answers["loopml"]["predictions"][0] in {"class_0", "class_1", "class_2"}
    assert len(answers["mlflow"]["predictions"]) == 1
    assert answers["v2"]["outputs"][0]["name"] == "predict"


@pytest.mark.slow
def test_describe_a_regression(tmp_path, capsys):
    project = _project(tmp_path, capsys, "diabetes", _diabetes)
    d = _describe(capsys, project, "diabetes")
    assert d["task"] == "regression"
    assert d["outputs"] == [{"name": "prediction", "type": "number", "of": "target"}]
    inputs = {c["name"]: c for c in d["inputs"]}
    assert inputs["clinic"]["categories"] == ["north", "south"]
    assert inputs["bmi"]["type"] == "number" and inputs["bmi"]["range"] is not None
    answers = _answers(project, d, capsys)
    assert isinstance(answers["loopml"]["predictions"][0], float)
    assert isinstance(answers["mlflow"]["predictions"][0], float)


def test_describe_something_missing_is_not_found_without_a_traceback(tmp_path, capsys):
    assert main(["init", str(tmp_path / "p")]) == 0
    capsys.readouterr()
    assert main(["describe", "nowhere", "-c", str(tmp_path / "p")]) == NOT_FOUND
    assert main(["describe", "42", "-c", str(tmp_path / "p")]) == NOT_FOUND
    err = capsys.readouterr().err
    assert "not found: No endpoint 'nowhere'" in err and "No model version 42" in err
    assert "Traceback" not in err
