"""`loopml explain VERSION --input FILE` on a real registered version: the documented JSON,
request ids from the data's id column, additivity, and usage errors as exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.conftest import synthetic_frame

from loopml.artifacts.model_loader import load_version
from loopml.artifacts.store import ArtifactStore
from loopml.cli import main
from loopml.config import load_config
from loopml.store import Store

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_explain_a_file_with_a_registered_version(project, tmp_path, capsys):
    assert main(["-c", str(project), "run"]) == 0
    capsys.readouterr()
    rows = synthetic_frame(n=6, seed=9)
    path = tmp_path / "rows.csv"
    rows.to_csv(path, index=False)
    assert main(["-c", str(project), "explain", "1", "--input", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"model_version", "output", "explanations"}
    assert doc["model_version"] == 1 and doc["output"] == "log-odds of class 1"
    assert [e["request_id"] for e in doc["explanations"]] == [str(i) for i in rows["id"]]
    feats = [f"x{i}" for i in range(6)] + ["cat"]
    cfg = load_config(project)
    store = Store(cfg.store_url)
    model = load_version(ArtifactStore(cfg.artifacts_root), store.versions.get(1))
    store.close()
    X = rows.drop(columns=["id", "label"])
    logit = model.decision_function(X)
    for e, want in zip(doc["explanations"], logit, strict=True):
        assert list(e["attributions"]) == list(X.columns)  # the user's columns, in order
        assert e["value"] == pytest.approx(e["base_value"] + sum(e["attributions"].values()))
        assert e["value"] == pytest.approx(want, abs=1e-6)
    # x0 and x1 carry the label: they lead the mean |attribution|
    mean_abs = {c: np.mean([abs(e["attributions"][c]) for e in doc["explanations"]]) for c in feats}
    assert set(sorted(mean_abs, key=mean_abs.get)[-2:]) == {"x0", "x1"}
    out = tmp_path / "explained.json"
    assert main(["-c", str(project), "explain", "1", "--input", str(path), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["explanations"] == doc["explanations"]


def test_explain_usage_errors_exit_2(project, tmp_path, capsys):
    assert main(["-c", str(project), "run"]) == 0
    capsys.readouterr()
    assert main(["-c", str(project), "explain", "1", "--input", str(tmp_path / "no.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "rows.csv"
    synthetic_frame(n=3).drop(columns=["x2"]).to_csv(bad, index=False)
    assert main(["-c", str(project), "explain", "1", "--input", str(bad)]) == 2
    assert "x2" in capsys.readouterr().err


def test_registration_stores_the_global_view_and_the_card_shows_it(project):
    from loopml.evaluate.documents.card import card_markdown, model_card

    assert main(["-c", str(project), "run"]) == 0
    cfg = load_config(project)
    store = Store(cfg.store_url)
    v = store.versions.get(1)
    run = store.runs.get(v["run_id"])
    store.close()
    summary = v["extra"]["explanation"]
    assert summary["method"] == "linear" and summary["output"] == "log-odds of class 1"
    assert summary["rows"] > 100 and list(summary["mean_abs"])[:2] in (["x0", "x1"], ["x1", "x0"])
    text = card_markdown(model_card(v, run))
    assert "## Attributions (mean |Shapley value| per column, held-out rows)" in text
    assert "| x0 |" in text and "log-odds of class 1" in text
