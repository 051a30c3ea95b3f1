"""Retraining: the config's data plus recent labelled prediction logs, through the same pipeline
and gates as ``loopml run``.

The recent rows are the champion's predictions (role ``champion``: what production really saw,
once per request; canary and shadow rows would repeat or bias it) from the last
``retrain.recent``, joined to their labels by request id (the latest label of a request wins),
with the label as the target column. Their feature columns are the logged inputs; columns the
log does not hold (id, time) stay empty.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopml.control.context import Context
from loopml.control.samples import as_datetime, read_label_map
from loopml.errors import LoopmlError
from loopml.logs.logreader import read_log
from loopml.logs.logtables import RESERVED


def labelled_recent(ctx: Context, endpoint: str, now: float) -> pd.DataFrame:
    """Champion rows of the last ``retrain.recent`` with their labels, as training rows."""
    start = now - ctx.cfg.retrain.recent
    log = read_log(ctx.root, endpoint, as_datetime(start), as_datetime(now))
    target = ctx.cfg.data.target
    if not log.num_rows:
        return pd.DataFrame()
    labels = read_label_map(ctx.root, endpoint, start, now)
    df = log.to_pandas()
    # the champion's answers once per request: its own traffic, and its paired answers on the
    # canary's rows (the same requests, scored off the response path)
    df = df[df["_role"].isin(("champion", "paired"))].drop_duplicates("_request_id")
    # never learn from windows whose inputs failed data-quality checks (a broken feed)
    bad = [
        (w["start"], w["end"])
        for w in ctx.store.monitoring.series(endpoint, since=start)
        if w["quality_errors"]
    ]
    if bad and len(df):
        ts = (df["_ts"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
        drop = np.zeros(len(df), dtype=bool)
        for s, e in bad:
            drop |= (ts >= s) & (ts < e)
        df = df[~drop]
    y = labels.reindex(df["_request_id"].to_numpy())
    keep = y.notna().to_numpy()
    frame = df.loc[keep, [c for c in df.columns if c not in RESERVED]].reset_index(drop=True)
    yv = pd.Series(y[keep].to_numpy())
    num = pd.to_numeric(yv, errors="coerce")
    if len(yv) and num.notna().all():
        integral = np.all(np.mod(num.to_numpy(dtype=float), 1) == 0)
        yv = num.astype(np.int64) if integral else num
    frame[target] = yv.to_numpy()
    return frame


def retrain(ctx: Context, endpoint: str, trigger: str, *, now: float) -> dict[str, Any]:
    """Train a candidate with ``loopml.train.run``; returns what happened (never raises a
    ``LoopmlError``: a failed run is an outcome, recorded by the caller)."""
    from loopml.train import run

    recent = labelled_recent(ctx, endpoint, now)  # in log (time) order
    cut = int(len(recent) * (1 - ctx.cfg.retrain.holdout))
    extra, holdout = recent.iloc[:cut], recent.iloc[cut:]
    info: dict[str, Any] = {
        "recent_rows": len(recent),
        "trained_on_recent": len(extra),
        "held_out_recent": len(holdout),
        "include_original": ctx.cfg.retrain.include_original,
        "recent_window_s": ctx.cfg.retrain.recent,
    }
    try:
        result = run(
            ctx.cfg,
            store=ctx.store,
            trigger=trigger,
            actor=ctx.actor,
            extra_frame=extra if len(extra) else None,
            recent_frame=holdout if len(holdout) else None,
            include_original=ctx.cfg.retrain.include_original,
        )
    except LoopmlError as e:
        return {**info, "outcome": "error", "error": e.message}
    gates = [
        {k: g.get(k) for k in ("gate", "verdict", "blocking", "message")} for g in result.gates
    ]
    metrics = {k: v for k, v in result.metrics.items() if isinstance(v, int | float)}
    failed = [g["gate"] for g in gates if g["verdict"] == "fail" and g["blocking"]]
    # a candidate stopped only by the champion comparison is no failure: on recent data a
    # fresh model is simply not better (back off); any other gate failing is a problem
    outcome = "passed" if result.passed else "not_better" if failed == ["champion"] else "rejected"
    return {
        **info,
        "outcome": outcome,
        "run": result.run_id,
        "version": result.version,
        "metrics": metrics,
        "gates": gates,
    }
