"""The demo's promises that do not need its four minutes: a fresh project each run (an earlier
demo's folder is emptied, anything else is refused), it exits unless --serve, and the payoff
compares what was served with the first model left alone on the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.cli import build_parser, main
from loopml.demo.folder import MARKER, fresh_project
from loopml.demo.payoff import payoff


def test_an_earlier_demo_is_removed_so_runs_do_not_mix(tmp_path):
    """Guards against a second run showing the first run's alerts, windows and decisions."""
    dest = tmp_path / "loopml-demo"
    (dest / ".loopml").mkdir(parents=True)
    (dest / ".loopml" / "loopml.db").write_text("the first run's store")
    (dest / MARKER).write_text("")
    assert fresh_project(dest) is True
    assert not dest.exists()
    assert fresh_project(dest) is False  # nothing there: nothing to say


def test_a_folder_the_demo_did_not_write_is_refused(tmp_path, capsys):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "thesis.tex").write_text("do not delete")
    assert main(["demo", "--dir", str(dest)]) == 2
    err = capsys.readouterr().err
    assert "not written by 'loopml demo'" in err and "--dir" in err and "Traceback" not in err
    assert (dest / "thesis.tex").read_text() == "do not delete"


def test_the_demo_exits_after_its_story_unless_asked_to_serve():
    parser = build_parser()
    assert parser.parse_args(["demo"]).serve is False
    assert parser.parse_args(["demo", "--no-serve"]).serve is False
    assert parser.parse_args(["demo", "--serve"]).serve is True
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--serve", "--no-serve"])


class _Constant:
    """A 'first model' that always answers 1."""

    def predict(self, frame):
        return np.ones(len(frame), dtype=int)


def test_payoff_compares_served_answers_with_the_first_model_on_the_same_rows():
    rows = pd.DataFrame({"x": range(4)})
    answered = [
        ((2017, 12), rows, np.array([1, 1, 0, 0]), np.array([1, 1, 0, 1])),  # served 3/4 right
        ((2018, 1), rows, np.array([0, 0, 0, 1]), np.array([0, 0, 0, 1])),  # served 4/4 right
    ]
    got = payoff(answered, _Constant(), (2018, 1))
    assert got["all"]["loop"] == pytest.approx(7 / 8)
    assert got["all"]["alone"] == pytest.approx(3 / 8)  # always 1: right on 2 + 1 rows
    assert got["since"] == {
        "first": (2018, 1),
        "last": (2018, 1),
        "months": 1,
        "rows": 4,
        "loop": 1.0,
        "alone": 0.25,
    }
