"""Dates in a CSV: date-like text columns are read as dates, so `data.time` splits by them,
`data.test_from` may be quoted or not, and init leaves them out of the features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from loopml.cli import main
from loopml.config import load_config
from loopml.data.dates import parse_dates
from loopml.train import run


def _csv(path) -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, 20, 21, 22, 23, 30]]
    frame = frame.rename(columns=lambda c: c.replace(" ", "_"))
    days = pd.Timestamp("2013-01-01") + pd.to_timedelta(np.arange(len(frame)) * 2, "D")
    frame.insert(0, "screened", days.strftime("%Y-%m-%d"))
    frame.insert(1, "booked", (days + pd.Timedelta("6h")).strftime("%Y-%m-%d %H:%M:%S"))
    frame.to_csv(path, index=False)
    return frame


def test_date_like_text_is_parsed_and_other_text_is_not():
    assert parse_dates(pd.Series(["2014-07-01", None, "2015-01-31"])).dtype.kind == "M"
    assert (
        parse_dates(pd.Series(["2014-07-01T10:00:00Z", "2014-07-02T10:00:00+02:00"])).dt.tz is None
    )
    assert parse_dates(pd.Series(["07/31/2014", "12/01/2014"])).iloc[0] == pd.Timestamp(
        "2014-07-31"
    )
    assert parse_dates(pd.Series(["2014-07-01", "soon"])) is None
    assert parse_dates(pd.Series(["12", "13"])) is None
    assert parse_dates(pd.Series([1, 2])) is None


def _init_screening(tmp_path) -> Path:
    """``loopml init`` of the screening CSV with ``--time screened``; the project folder."""
    data = tmp_path / "screening.csv"
    _csv(data)
    project = tmp_path / "p"
    init = ["init", str(project), "--data", str(data), "--target", "target"]
    assert main([*init, "--time", "screened"]) == 0
    return project


@pytest.mark.parametrize("test_from", ["2014-03-01", "'2014-03-01'"])
def test_csv_with_date_strings_splits_by_time_with_test_from(tmp_path, capsys, test_from):
    """Regression: `init --time <date column>` then `run` crashed with ArrowNotImplementedError
    in the split, and an unquoted test_from gave a TypeError traceback."""
    project = _init_screening(tmp_path)
    out = capsys.readouterr().out
    assert "booked" in out  # the other date column is left out of the features
    cfg = load_config(project)
    assert cfg.data.drop == ["booked"]
    assert main(["-c", str(project), "run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"]
    text = (project / "loopml.yaml").read_text()
    (project / "loopml.yaml").write_text(
        text.replace("data:\n", f"data:\n  test_from: {test_from}\n", 1)
    )
    result = run(load_config(project))
    assert result.split.startswith("by time: screened >= 2014-03-01")
    inputs = [c["name"] for c in result.version["signature"]["columns"]]
    assert inputs and not {"screened", "booked"} & set(inputs)


def test_test_from_that_is_not_a_date_is_a_config_error(tmp_path, capsys):
    project = _init_screening(tmp_path)
    text = (project / "loopml.yaml").read_text()
    (project / "loopml.yaml").write_text(text.replace("data:\n", "data:\n  test_from: 17\n", 1))
    capsys.readouterr()
    assert main(["-c", str(project), "run"]) == 2
    err = capsys.readouterr().err
    assert "data.test_from must be a date such as '2014-07-01'" in err and "Traceback" not in err
