"""Confidence-based performance estimation: sums checked against direct formulas, and the
estimate validated against realised accuracy on the employment data's later years."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from loopml.monitor import run_monitor
from loopml.monitor.estimation import BinaryEstimate
from loopml.stats.calibration import calibrate, fit_calibration
from loopml.store import Store

from ._log import T0, make_config, register, write_labels, write_predictions


def test_expected_confusion_matches_direct_sums():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=5000)
    yhat = p > 0.4
    e = BinaryEstimate().update(p[:2000], yhat[:2000]) + BinaryEstimate().update(
        p[2000:], yhat[2000:]
    )
    got = e.get()
    assert got["accuracy"] == pytest.approx(np.mean(np.where(yhat, p, 1 - p)))
    tp, fp = p[yhat].sum(), (1 - p[yhat]).sum()
    assert got["precision"] == pytest.approx(tp / (tp + fp))
    # labels drawn from calibrated scores: the estimate matches the realised metrics
    y = rng.uniform(size=(200, len(p))) < p
    assert got["accuracy"] == pytest.approx(np.mean(y == yhat), abs=0.005)
    assert got["roc_auc"] == pytest.approx(np.mean([roc_auc_score(r, p) for r in y[:20]]), abs=0.01)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=2, max_size=60), st.integers(0, 59))
def test_merge_is_order_free(ps, cut):
    p = np.array(ps)
    yhat = p > 0.5
    cut = min(cut, len(p))
    a = BinaryEstimate().update(p, yhat).get()
    b = (
        BinaryEstimate().update(p[cut:], yhat[cut:]) + BinaryEstimate().update(p[:cut], yhat[:cut])
    ).get()
    assert a["accuracy"] == pytest.approx(b["accuracy"])
    assert (
        a["roc_auc"] == pytest.approx(b["roc_auc"])
        if a["roc_auc"] is not None
        else b["roc_auc"] is None
    )


def test_scores_a_subnormal_from_zero_leave_the_expected_auc_undefined_not_an_error():
    """Found by test_merge_is_order_free in the suite: one positive expected from a score of
    5e-324 shares a bin with a 0.0, and half of 5e-324 is 0: no expected positive is left."""
    p = np.array([5e-324, 0.0])
    got = BinaryEstimate().update(p, p > 0.5).get()
    assert got["roc_auc"] is None and got["accuracy"] == pytest.approx(1.0)


def test_isotonic_calibration_is_monotone_and_fixes_a_miscalibrated_score():
    rng = np.random.default_rng(1)
    true = rng.uniform(size=20000)
    y = rng.uniform(size=len(true)) < true
    raw = true**3  # over-confident in the negative direction
    cal = fit_calibration(raw, y)
    assert np.all(np.diff(cal["y"]) >= 0)
    fixed = calibrate(raw, cal)
    assert abs(np.mean(fixed) - np.mean(y)) < 0.01
    assert np.mean(np.abs(fixed - true)) < 0.05 < np.mean(np.abs(raw - true))


def _categorical(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    out = frame[features].copy()
    for c in out.columns:
        if not pd.api.types.is_numeric_dtype(out[c]):
            out[c] = out[c].astype("category")
    return out


@pytest.fixture(scope="module")
def employment():
    from loopml.errors import DataError
    from loopml.examples.employment import load_years, source_folder

    try:
        source_folder()
    except DataError:
        pytest.skip(
            "the employment data ships in the nannyml wheel (pip install --no-deps nannyml==0.13.1)"
        )

    years = load_years()
    features = [c for c in years[2015].columns if c not in ("id", "year", "employed")]
    train = years[2015].sample(frac=1.0, random_state=0)
    cut = int(0.7 * len(train))
    fit, hold = train.iloc[:cut], train.iloc[cut:]
    model = HistGradientBoostingClassifier(
        max_iter=60, categorical_features="from_dtype", early_stopping=False, random_state=0
    )
    model.fit(_categorical(fit, features), fit["employed"])
    hold_score = model.predict_proba(_categorical(hold, features))[:, 1]
    return {
        "years": years,
        "features": features,
        "fit": fit,
        "hold": hold,
        "model": model,
        "hold_score": hold_score,
        "hold_pred": model.predict(_categorical(hold, features)),
        "calibration": fit_calibration(hold_score, hold["employed"].to_numpy() == 1),
    }


def test_cbpe_estimates_accuracy_within_002_on_later_employment_years(employment):
    e = employment
    for year in (2016, 2017, 2018):
        frame = e["years"][year]
        X = _categorical(frame, e["features"])
        score, pred = e["model"].predict_proba(X)[:, 1], e["model"].predict(X)
        est = BinaryEstimate().update(calibrate(score, e["calibration"]), pred == 1).get()
        realised = float(np.mean(pred == frame["employed"].to_numpy()))
        assert abs(est["accuracy"] - realised) <= 0.02, (year, est["accuracy"], realised)


def test_monitor_pass_estimates_then_realises_employment_2018(tmp_path, employment):
    """Through the log: estimated accuracy before labels, realised after, within 0.02."""
    e = employment
    cfg = make_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    cfg.data.target, cfg.data.sensitive = "employed", ["SEX", "RAC1P"]
    store = Store(cfg.store_url)
    hold_acc = float(np.mean(e["hold_pred"] == e["hold"]["employed"].to_numpy()))
    v = register(
        store,
        cfg,
        e["fit"][[*e["features"], "employed"]],
        e["hold_pred"],
        e["hold_score"],
        metrics={"accuracy": hold_acc},
        target="employed",
        calibration=e["calibration"],
    )
    frame = e["years"][2018]
    X = _categorical(frame, e["features"])
    score, pred = e["model"].predict_proba(X)[:, 1], e["model"].predict(X)
    rng = np.random.default_rng(0)
    ids = write_predictions(
        cfg.artifacts_root,
        "employment",
        frame[e["features"]],
        version=v["id"],
        prediction=pred,
        score=score,
        ts=T0 + rng.uniform(0, 3600, len(frame)),
    )
    run_monitor(cfg, store, now=T0 + 3600)
    (row,) = store.monitoring.series("employment")
    assert row["labels"] == 0 and row["rows"] == len(frame)
    write_labels(
        cfg.artifacts_root, "employment", ids, frame["employed"].to_numpy(), ts=T0 + 5 * 3600
    )
    run_monitor(cfg, store, now=T0 + 6 * 3600)
    (row,) = store.monitoring.series("employment")
    assert row["labels"] == len(frame)
    assert abs(row["estimated_accuracy"] - row["accuracy"]) <= 0.02
    assert row["accuracy"] == pytest.approx(np.mean(pred == frame["employed"].to_numpy()))
    assert row["quality_errors"] == 0 and row["fairness_ratio"] is not None
    assert not store.monitoring.alerts(status="open")
