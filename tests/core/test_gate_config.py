"""Behaviour tests in loopml.yaml are checked before training: their shape, their column
names against the model's inputs, MFT case files relative to the project folder, and errors
that name the real YAML line. All exit 2 and leave the store untouched."""

from __future__ import annotations

import pytest
from tests.conftest import make_project

from loopml.cli import main
from loopml.config import load_config, parse_config
from loopml.errors import ConfigError

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
    assert code == 2 and "'gates.behaviour.tests': must be a list" in err
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


def test_a_bad_gate_option_is_named_with_its_file_and_line_when_the_config_is_read(
    tmp_path, capsys
):
    """Regression: gate options were checked by the gates, after the file was read, so their
    errors came without a line (and only from `loopml run`)."""
    root = make_project(
        tmp_path / "p",
        config=BASE.replace("  behaviour:\n    tests:\n", "")
        + "  data:\n    max_null_rate: 0.3\n    leakage_auc: 1.5\n",
    )
    with pytest.raises(ConfigError) as e:
        load_config(root)
    where = f"{root / 'loopml.yaml'}, line 7"
    assert str(e.value).startswith(f"{where}: 'gates.data.leakage_auc' must be less than")
    assert "Got 1.5 instead" in str(e.value) and e.value.field == "gates.data.leakage_auc"
    code = main(["-c", str(root), "versions"])  # any command reads it, not only `loopml run`
    assert code == 2 and where in capsys.readouterr().err
    (root / "loopml.yaml").write_text(
        BASE + "      - {type: DIR, column: x0}\n  data: {leakage_fold: 3}\n"
    )
    with pytest.raises(ConfigError, match=r"line 8: unknown key 'gates.data.leakage_fold'. Did"):
        load_config(root)


def test_gate_defaults_live_in_the_config():
    cfg = parse_config(BASE.replace("    tests:\n", "    max_rows: 50\n") + "  labels: {}\n")
    assert cfg.gates.behaviour is not None and cfg.gates.behaviour.max_rows == 50
    assert cfg.gates.labels is not None and cfg.gates.labels.blocking is False
    assert cfg.gates.labels.filter_by == "prune_by_noise_rate" and cfg.gates.data is None
