"""Drift decisions: the acceptance goals on false alarms and power, calibration, weighting."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopml.errors import UsageError
from loopml.stats import (
    DatasetProfile,
    Thresholds,
    calibrate_thresholds,
    column_drift,
    dataset_drift,
    domain_classifier_drift,
)

N_NUM, N_CAT = 40, 10
LEVELS = np.array([f"l{i}" for i in range(20)])
ZIPF = 1 / np.arange(1, 21) ** 1.1
ZIPF /= ZIPF.sum()


def _population(n, rng, shift=()):
    """50 features: normal, lognormal and integer numerics plus Zipf-like categoricals."""
    cols = {}
    for j in range(N_NUM):
        if j % 3 == 0:
            v = rng.normal(j, 1 + j % 5, n)
        elif j % 3 == 1:
            v = rng.lognormal(0, 0.5 + (j % 4) / 4, n)
        else:
            v = rng.poisson(3 + j % 7, n).astype(float)
        if j in shift:
            v = v + 0.5 * REF_STD[j]
        cols[f"n{j}"] = v
    for j in range(N_CAT):
        cols[f"c{j}"] = pa.array(LEVELS[rng.choice(20, n, p=ZIPF)])
    return pa.table(cols)


_rng = np.random.default_rng(2024)
REF_STD = {j: None for j in range(N_NUM)}
_train = _population(200_000, _rng)
for _j in range(N_NUM):
    REF_STD[_j] = float(np.std(_train.column(f"n{_j}").to_numpy()))
REFERENCE = DatasetProfile.from_frame(_train)
WINDOW = 10_000
THRESHOLDS = calibrate_thresholds(REFERENCE, WINDOW)


def test_no_drift_windows_raise_at_most_one_percent_false_alarms():
    rng = np.random.default_rng(1)
    windows, column_alarms, window_alarms = 25, 0, 0
    for _ in range(windows):
        cur = DatasetProfile.from_frame(_population(WINDOW, rng), reference=REFERENCE)
        res = dataset_drift(REFERENCE, cur, thresholds=THRESHOLDS)
        column_alarms += len(res.drifted_columns)
        window_alarms += bool(res.drifted_columns)
    assert window_alarms / windows <= 0.01
    assert column_alarms / (windows * (N_NUM + N_CAT)) <= 0.01


def test_half_sigma_shift_in_five_of_fifty_features_is_detected():
    rng = np.random.default_rng(2)
    shifted = {0, 7, 13, 22, 38}  # normal, lognormal and integer features
    windows, hits, false = 25, 0, 0
    for _ in range(windows):
        cur = DatasetProfile.from_frame(
            _population(WINDOW, rng, shift=shifted), reference=REFERENCE
        )
        res = dataset_drift(REFERENCE, cur, thresholds=THRESHOLDS)
        flagged = set(res.drifted_columns)
        hits += len(flagged & {f"n{j}" for j in shifted})
        false += len(flagged - {f"n{j}" for j in shifted})
        assert res.share == pytest.approx(len(flagged) / 50)
    assert hits / (windows * len(shifted)) >= 0.99
    assert false / (windows * 45) <= 0.01


def test_calibration_raises_thresholds_for_small_windows_only():
    small = calibrate_thresholds(REFERENCE, 50, n_resamples=100)
    assert all(v["psi"] >= 0.1 for v in THRESHOLDS.values.values())
    assert THRESHOLDS.get("n0", "psi") == pytest.approx(0.1)
    assert THRESHOLDS.get("n0", "wasserstein") == pytest.approx(0.1)
    assert small.get("n0", "psi") > 0.2 and small.get("n0", "wasserstein") > 0.2
    assert small.get("c0", "jensenshannon") > 0.1
    assert Thresholds.from_dict(small.to_dict()) == small
    with pytest.raises(UsageError, match="window_size"):
        calibrate_thresholds(REFERENCE, 0)


def test_calibrated_small_windows_keep_false_alarms_near_the_quantile():
    rng = np.random.default_rng(3)
    thr = calibrate_thresholds(REFERENCE, 200, quantile=0.99)
    flags = []
    for _ in range(20):
        cur = DatasetProfile.from_frame(_population(200, rng), reference=REFERENCE)
        flags += [c.drifted for c in dataset_drift(REFERENCE, cur, thresholds=thr).columns]
    assert np.mean(flags) <= 0.03  # the 1% per-column target, with room for 1000 draws' noise


def test_importance_weighted_share_and_dataset_flag():
    rng = np.random.default_rng(4)
    cur = DatasetProfile.from_frame(_population(5000, rng, shift={0}), reference=REFERENCE)
    weights = {"n0": 49.0}
    res = dataset_drift(REFERENCE, cur, importance=weights, drift_share=0.5)
    assert res.drifted_columns == ["n0"]
    assert res.share == pytest.approx(49 / (49 + 49)) and res.drifted
    assert not dataset_drift(REFERENCE, cur).drifted
    col = res.columns[0].to_dict()
    assert {"method", "value", "threshold", "drifted", "evidence"} <= set(col)
    assert len(col["evidence"]["reference"]) == len(col["evidence"]["edges"]) + 1


def test_methods_by_kind_and_name_and_errors():
    rng = np.random.default_rng(5)
    cur = DatasetProfile.from_frame(_population(2000, rng), reference=REFERENCE)
    res = dataset_drift(
        REFERENCE,
        cur,
        methods={"numeric": "wasserstein", "c1": "chisquare"},
        columns=["n1", "c0", "c1", "nope"],
    )
    assert [c.method for c in res.columns] == ["wasserstein", "jensenshannon", "chisquare"]
    assert "nope" in res.skipped
    with pytest.raises(UsageError, match="does not apply"):
        column_drift("n1", REFERENCE.columns["n1"], cur.columns["n1"], method="linf")


def test_categorical_drift_is_detected():
    rng = np.random.default_rng(6)
    cur_table = _population(WINDOW, rng)
    permuted = pa.array(LEVELS[rng.choice(20, WINDOW, p=ZIPF[::-1])])
    cur_table = cur_table.set_column(cur_table.schema.get_field_index("c0"), "c0", permuted)
    cur = DatasetProfile.from_frame(cur_table, reference=REFERENCE)
    assert dataset_drift(REFERENCE, cur, thresholds=THRESHOLDS).drifted_columns == ["c0"]


def test_domain_classifier_separates_shifted_windows_only():
    rng = np.random.default_rng(8)

    def frame(n, shift):
        return pd.DataFrame(
            {
                "a": rng.normal(shift, 1, n),
                "b": rng.normal(0, 1, n),
                "c": rng.choice(["x", "y", "z"], n),
            }
        )

    same = domain_classifier_drift(frame(3000, 0), frame(3000, 0), n_splits=3)
    moved = domain_classifier_drift(
        frame(3000, 0), pa.Table.from_pandas(frame(3000, 0.5)), n_splits=3
    )
    assert same.auc < 0.55 and not same.drifted
    assert moved.auc > 0.58 and moved.drifted


def test_default_numeric_rule_finds_a_quarter_sigma_shift_that_psi_misses():
    """Guards issue 11 item 11: the default must see what Evidently's W1/sd >= 0.1 sees."""
    rng = np.random.default_rng(9)
    big = 100_000
    table = _population(big, rng)
    shifted = pa.array(table.column("n0").to_numpy() + 0.25 * REF_STD[0])
    table = table.set_column(table.schema.get_field_index("n0"), "n0", shifted)
    cur = DatasetProfile.from_frame(table, reference=REFERENCE)
    thr = calibrate_thresholds(REFERENCE, big)
    default = dataset_drift(REFERENCE, cur, thresholds=thr)
    assert default.drifted_columns == ["n0"]
    assert default.columns[0].method == "wasserstein"
    assert default.columns[0].value == pytest.approx(0.25, abs=0.02)
    psi = dataset_drift(REFERENCE, cur, thresholds=thr, methods={"numeric": "psi"})
    assert "n0" not in psi.drifted_columns
