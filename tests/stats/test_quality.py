"""Schema inference and quality checks: each check fires on its fault and stays quiet on clean data."""

import json

import numpy as np
import pandas as pd
import pytest

from loopml.errors import DataError
from loopml.stats import DatasetProfile, Schema, Tolerances, check_quality, infer_schema

rng = np.random.default_rng(11)
N = 50_000
TRAIN = pd.DataFrame(
    {
        "age": rng.normal(40, 10, N),
        "n": rng.integers(0, 10, N),
        "seg": rng.choice(["a", "b", "c", "rare"], N, p=[0.5, 0.3, 0.195, 0.005]),
        "flag": rng.random(N) > 0.5,
    }
)
TRAIN.loc[rng.random(N) < 0.03, "age"] = np.nan
REF = DatasetProfile.from_frame(TRAIN)
SCHEMA = infer_schema(REF)


def _window(n=5000, seed=0):
    return TRAIN.sample(n, random_state=seed).reset_index(drop=True)


def _checks(findings):
    return sorted((f.check, f.column) for f in findings)


def test_schema_has_tolerant_bounds_categories_and_null_rates():
    age = SCHEMA.columns["age"]
    q001, q999 = np.nanquantile(TRAIN["age"], [0.001, 0.999])
    assert age.lower < q001 and age.upper > q999  # quantiles plus margin ...
    assert age.lower != TRAIN["age"].min() and age.upper != TRAIN["age"].max()  # ... not min/max
    assert age.null_rate == pytest.approx(TRAIN["age"].isna().mean())
    assert SCHEMA.columns["seg"].categories == ["a", "b", "c", "rare"]
    assert SCHEMA.columns["flag"].kind == "categorical"
    assert Schema.from_dict(json.loads(json.dumps(SCHEMA.to_dict()))) == SCHEMA
    with pytest.raises(DataError, match="not a loopml schema"):
        Schema.from_dict({"format": "x"})


@pytest.mark.parametrize("as_frame", [False, True])
def test_clean_windows_raise_nothing(as_frame):
    for seed in range(5):
        win = _window(seed=seed)
        current = win if as_frame else DatasetProfile.from_frame(win, reference=REF)
        assert check_quality(SCHEMA, current, expected_rows=5000) == []


def test_each_fault_is_found_with_evidence():
    win = _window(4000)
    win.loc[:399, "age"] = 500.0  # out of range
    win.loc[400:1399, "age"] = np.nan  # null-rate jump
    win["seg"] = win["seg"].replace({"c": "new"})  # unseen category, and segment c vanishes
    win = win.drop(columns=["flag"]).assign(extra=1)
    win["n"] = win["n"].astype(str)  # type change
    findings = check_quality(
        SCHEMA, DatasetProfile.from_frame(win, reference=REF), expected_rows=10_000
    )
    assert _checks(findings) == sorted(
        [
            ("volume", None),
            ("out_of_range", "age"),
            ("null_rate", "age"),
            ("unseen_category", "seg"),
            ("vanished_segment", "seg"),
            ("missing_column", "flag"),
            ("extra_column", "extra"),
            ("type_change", "n"),
        ]
    )
    by = {f.check: f for f in findings}
    assert by["out_of_range"].evidence["rows_affected"] == 400
    assert by["out_of_range"].evidence["observed"]["exact"] is True
    assert by["null_rate"].evidence["rows_affected"] == win["age"].isna().sum()
    assert by["unseen_category"].evidence["rows_affected"] == (win["seg"] == "new").sum()
    assert by["vanished_segment"].evidence["observed"]["rows"] == 0
    assert by["type_change"].severity == "error" and by["missing_column"].severity == "error"
    assert by["volume"].evidence == {"expected": 10_000, "observed": 4000, "rows_affected": 6000}
    assert all({"expected", "observed", "rows_affected"} <= set(f.evidence) for f in findings)
    json.dumps([f.to_dict() for f in findings])


def test_rare_segment_is_not_called_vanished_in_a_small_window():
    win = _window(1000)
    win = win[win["seg"] != "rare"]  # expected only ~5 rows: too few to call it gone
    assert [f for f in check_quality(SCHEMA, win) if f.check == "vanished_segment"] == []


def test_empty_window_and_tolerances():
    empty = DatasetProfile.from_frame(TRAIN.iloc[:0], reference=REF)
    assert [(f.check, f.severity) for f in check_quality(SCHEMA, empty)] == [("volume", "error")]
    win = _window(5000)
    win.loc[:99, "age"] = np.nan
    loose = check_quality(SCHEMA, win, tolerances=Tolerances(null_rate_jump=0.5))
    tight = check_quality(SCHEMA, win, tolerances=Tolerances(null_rate_jump=0.0, z=0.0))
    assert loose == [] and [f.check for f in tight] == ["null_rate"]


def test_out_of_range_estimated_from_sketch_when_edges_differ():
    win = _window(3000)
    win.loc[:299, "age"] = -1000.0
    own = DatasetProfile.from_frame(win)  # no reference: its own edges
    f = next(f for f in check_quality(SCHEMA, own) if f.check == "out_of_range")
    assert f.evidence["observed"]["exact"] is False
    assert abs(f.evidence["rows_affected"] - 300) <= 0.02 * 3000
