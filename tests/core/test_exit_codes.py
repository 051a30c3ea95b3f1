"""Exit codes of `loopml run` (0 registered, 1 rejected, 2 usage/config, 3 crashed) and the
champion gate failing closed when the champion cannot be loaded."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import CONFIG, TRAIN_PY, make_project

from loopml.artifacts.store import ArtifactStore
from loopml.cli import EXIT_CODES, build_parser, main
from loopml.cli.parser import EXIT_HELP
from loopml.config import load_config
from loopml.store import Store

WORSE = """

def worse(X, y, params, seed=0):
    from sklearn.dummy import DummyClassifier

    return DummyClassifier(strategy="prior").fit(X, y)


def crash_in_predict(X, y, params, seed=0):
    return object.__new__(type("Odd", (), {"predict": lambda self, X: 1 / 0}))
"""

CHAMPION = CONFIG + "gates:\n  champion: {}\n"


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _champion_project(root: Path, capsys) -> Path:
    project = make_project(root, config=CHAMPION)
    (project / "train.py").write_text(TRAIN_PY + WORSE)
    assert _cli(capsys, "-c", str(project), "run")[0] == 0
    assert _cli(capsys, "-c", str(project), "deploy", "tiny", "1")[0] == 0
    (project / "loopml.yaml").write_text(CHAMPION.replace("train.py:train", "train.py:worse"))
    return project


def test_worse_model_is_rejected_against_a_loadable_champion(tmp_path, capsys):
    project = _champion_project(tmp_path / "ok", capsys)
    code, out, _ = _cli(capsys, "-c", str(project), "run", "--json")
    assert code == 1
    gate = next(g for g in json.loads(out)["gates"] if g["gate"] == "champion")
    assert gate["verdict"] == "fail" and gate["blocking"]


def test_champion_that_cannot_be_loaded_blocks_and_names_the_cause(tmp_path, capsys):
    """Regression: one damaged byte in the champion's artifact made the gate say "no champion
    yet (this does not block)" and a clearly worse model registered with exit 0."""
    project = _champion_project(tmp_path / "damaged", capsys)
    cfg = load_config(project)
    v1 = Store(cfg.store_url).versions.get(1)
    path = Path(ArtifactStore(cfg.artifacts_root).local_path(v1["artifact"]))
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    code, out, _ = _cli(capsys, "-c", str(project), "run", "--json")
    assert code == 1
    result = json.loads(out)
    gate = next(g for g in result["gates"] if g["gate"] == "champion")
    assert gate["verdict"] == "fail" and gate["blocking"]
    assert "version 1, could not be loaded" in gate["message"]
    assert "sha256" in gate["message"] or "digest" in gate["message"]
    assert Store(cfg.store_url).versions.get(result["version"])["status"] == "rejected"


def test_no_champion_is_not_judged_and_says_so_consistently(project, capsys):
    """Regression: the champion gate's JSON said blocking: true while its message said it does
    not block."""
    (project / "loopml.yaml").write_text(CHAMPION)
    code, out, _ = _cli(capsys, "-c", str(project), "run", "--json")
    assert code == 0
    gate = next(g for g in json.loads(out)["gates"] if g["gate"] == "champion")
    assert gate["verdict"] == "insufficient_data" and gate["blocking"] is False
    assert "does not block" in gate["message"]


def test_a_crash_in_the_users_model_is_exit_3_not_1(project, capsys):
    (project / "train.py").write_text(TRAIN_PY + WORSE)
    (project / "loopml.yaml").write_text(
        CONFIG.replace("train.py:train", "train.py:crash_in_predict")
    )
    code, _, err = _cli(capsys, "-c", str(project), "run")
    assert code == 3 and "ZeroDivisionError" in err and "Traceback" not in err


def test_exit_codes_are_in_help_and_readme():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for code, meaning in EXIT_CODES.items():
        assert f"{code}  {meaning}" in EXIT_HELP
    assert EXIT_HELP in build_parser().format_help()
    assert "3 crashed" in readme and "Exit codes" in readme


def test_each_verdict_is_printed_once_with_one_word(project, capsys):
    """Regression: gate verdicts were printed twice, and the champion gate showed as '?',
    'n/a' and 'champion:insufficient_data' in one run."""
    (project / "loopml.yaml").write_text(CHAMPION)
    assert main(["-c", str(project), "run"]) == 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert text.count("No champion yet") == 1
    assert "not judged champion:" in " ".join(text.split())
    assert "n/a" not in text and "? champion" not in text
