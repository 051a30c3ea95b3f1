"""What a run records beyond git: the training entry point and the sha256 of the project's
Python files (shown in `versions --json` and the card), and the thread limit it trained with."""

from __future__ import annotations

import hashlib
import json

from tests.conftest import CONFIG

from loopml.cli import main
from loopml.config import load_config
from loopml.evaluate.card import card_markdown, model_card
from loopml.store import Store


def test_code_lineage_outside_git_is_recorded_and_shown(project, capsys):
    (project / "features.py").write_text("SCALE = 2\n")
    assert main(["-c", str(project), "run"]) == 0
    capsys.readouterr()
    assert main(["-c", str(project), "versions", "--json"]) == 0
    [v] = json.loads(capsys.readouterr().out)
    code = v["lineage"]["code"]
    assert code["entry_point"] == "train.py:train"
    digest = hashlib.sha256((project / "train.py").read_bytes()).hexdigest()
    assert code["files"] == {
        "features.py": hashlib.sha256(b"SCALE = 2\n").hexdigest(),
        "train.py": digest,
    }
    store = Store(load_config(project).store_url)
    version, run = store.versions.get(v["version"]), store.runs.get(v["lineage"]["run"])
    assert run["details"]["code"] == code
    md = card_markdown(model_card(version, run))
    assert "entry point `train.py:train`" in md and digest in md


def test_thread_limit_is_applied_and_recorded(project, capsys):
    """Regression: `loopml run` left BLAS/OpenMP at one thread per core (88-98 s on a busy
    two-core box against 8-10 s with one thread) and the run did not say which it used."""
    assert main(["-c", str(project), "run"]) == 0
    (project / "loopml.yaml").write_text(
        CONFIG.replace("  train: train.py:train", "  train: train.py:train\n  threads: 2")
    )
    assert main(["-c", str(project), "run"]) == 0
    capsys.readouterr()
    assert main(["-c", str(project), "runs", "--json"]) == 0
    second, first = json.loads(capsys.readouterr().out)
    assert first["details"]["threads"]["limit"] == 1 and second["details"]["threads"]["limit"] == 2
    for run, n in ((first, 1), (second, 2)):
        libs = run["details"]["threads"]["libraries"]
        assert libs and all(lib["num_threads"] == n for lib in libs)
