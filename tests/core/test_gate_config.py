"""Behaviour tests in loopml.yaml are checked before training: their shape, their column
names against the model's inputs, MFT case files relative to the project folder, and errors
that name the real YAML line. All exit 2 and leave the store untouched."""

from __future__ import annotations

from tests.conftest import make_project

from loopml.cli import main

BASE = """\
project: tiny
data: {train: data/train.parquet, target: label, id: id, features: [x0, x1, cat]}
model: {name: tiny, train: train.py:train}
gates:
  behaviour:
    tests:
"""


def _run(tmp_path, capsys, tests: str, cwd=None, monkeypatch=None) -> tuple[int, str, object]:
    root = make_project(tmp_path / "p", config=BASE + tests)
    if monkeypatch is not None:
        monkeypatch.chdir(cwd or tmp_path)
    code = main(["-c", str(root), "run"])
    return code, capsys.readouterr().err, root


def test_a_mapping_where_a_list_is_expected_is_a_config_error(tmp_path, capsys):
    """Regression: `tests:` given a mapping raised a Python traceback."""
    code, err, root = _run(tmp_path, capsys, "      type: DIR\n      column: x0\n")
    assert code == 2 and "gates.behaviour.tests must be a list" in err
    assert "line 6" in err and "Traceback" not in err
    assert not (root / ".loopml").exists()


def test_a_misspelt_column_is_found_before_training_with_its_line(tmp_path, capsys):
    """Regression: typos were found only after training, stored as a rejected version, and
    the error pointed at line 1."""
    tests = (
        "      - {type: DIR, column: x0, expect: up}\n      - {type: DIR, column: x9, expect: up}\n"
    )
    code, err, root = _run(tmp_path, capsys, tests)
    assert code == 2 and "['x9']" in err and "tests[1]" in err
    assert "loopml.yaml, line 8" in err
    assert not (root / ".loopml").exists()  # nothing trained, nothing recorded


def test_mft_cases_are_read_from_the_project_folder(tmp_path, capsys, monkeypatch):
    """Regression: the MFT cases path was resolved against the current directory."""
    root = make_project(
        tmp_path / "p", config=BASE + "      - {type: MFT, cases: cases.csv, max_failure_rate: 1}\n"
    )
    (root / "cases.csv").write_text("x0,x1,cat,expected\n3.0,-3.0,a,1\n-3.0,3.0,b,0\n")
    monkeypatch.chdir(tmp_path)  # not the project folder
    assert main(["-c", str(root), "run"]) == 0, capsys.readouterr().err
    (root / "cases.csv").write_text("x0,cat,expected\n3.0,a,1\n")
    code = main(["-c", str(root), "run"])
    err = capsys.readouterr().err
    assert code == 2 and "lack the model input column(s) ['x1']" in err and "line 7" in err
