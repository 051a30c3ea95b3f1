"""Everything ``loopml run`` checks before a run is recorded, and the split it records.

``load_inputs`` reads the rows (with any extra labelled rows), imports the user's training
function, infers the task and builds the gates for it, and checks all of them against the
columns, so a bad config or a missing file leaves the store untouched. ``split_and_snapshot``
splits the rows into train and test and records both snapshots; ``train.pipeline`` goes on
from there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from loopml.config import Config
from loopml.data.snapshot import snapshot
from loopml.data.sources import load_callable, load_frame
from loopml.errors import ConfigError
from loopml.progress import Steps
from loopml.store import Store
from loopml.train.inputs import (
    check_columns,
    check_positive_class,
    feature_columns,
    infer_task,
    task_note,
)

# gate options whose validity depends on the task (their errors say how the task was chosen)
TASK_FIELDS = ("gates.metrics", "gates.champion", "gates.fairness", "gates.behaviour")


@dataclass
class RunInputs:
    """What is checked before a run is recorded: the rows, their features, the user's training
    function, the task and the gates built for it."""

    frame: pd.DataFrame
    features: list[str]
    train_fn: Any
    y_all: pd.Series
    task: str
    gates: list[Any]


@dataclass
class SplitRows:
    train_df: pd.DataFrame
    test_df: pd.DataFrame
    how: str
    snaps: dict[str, Any]
    snap_ids: dict[str, Any]


def load_inputs(
    cfg: Config,
    steps: Steps,
    timings: dict[str, float],
    extra_frame: pd.DataFrame | None,
    include_original: bool,
) -> RunInputs:
    """Load the rows (with any extra labelled rows), the user's training function and the gates,
    and check all of them before anything is recorded."""
    from loopml.train.gating import build_gates, check_gates_on_data

    with steps.step(f"Load data from {cfg.data.train}"):
        t = time.perf_counter()
        frame = load_frame(cfg.data.train, cfg.root)
        if extra_frame is not None and len(extra_frame):
            extra = extra_frame[frame.columns.intersection(extra_frame.columns)]
            if include_original:
                frame = pd.concat([frame, extra], ignore_index=True)
            else:  # recent labelled rows only; columns the log lacks (id, time) stay empty
                frame = extra.reindex(columns=frame.columns).reset_index(drop=True)
        check_columns(cfg, frame)
        features = feature_columns(cfg, frame)
        t_import = time.perf_counter()  # importing the user's module is the user's code too
        train_fn = load_callable(cfg.model.train, cfg.root, what="model.train")
        timings["train_import"] = time.perf_counter() - t_import
        y_all = frame[cfg.data.target]
        task = infer_task(cfg, y_all)
        check_positive_class(cfg, y_all, task)
        try:
            gates = build_gates(cfg, task)
        except ConfigError as e:  # a metric unknown for the task may mean a misread task
            if not (e.field or "").startswith(TASK_FIELDS):
                raise
            note = task_note(cfg, y_all, task)
            raise ConfigError(f"{e.message} {note[0].upper()}{note[1:]}.", field=e.field) from None
        check_gates_on_data(gates, cfg, frame[features].head(0))
        timings["load"] = time.perf_counter() - t
        steps.note(f"{len(frame):,} rows, {len(features)} features, task: {task}")
    return RunInputs(frame, features, train_fn, y_all, task, gates)


def split_and_snapshot(
    cfg: Config, store: Store | None, inputs: RunInputs
) -> tuple[SplitRows, Store]:
    """Split the rows into train and test and record both snapshots (in ``store``, opened from
    the config when None)."""
    from loopml.train.split import split

    frame = inputs.frame
    tr, te, how = split(frame, cfg.data, inputs.task, cfg.model.seed)
    train_df, test_df = (
        frame.iloc[tr].reset_index(drop=True),
        frame.iloc[te].reset_index(drop=True),
    )
    snaps = {
        "train": snapshot(train_df, cfg.data.train),
        "test": snapshot(test_df, cfg.data.train),
    }
    if store is None:
        store = Store(cfg.store_url)
    snap_ids = {
        k: store.snapshots.ensure(hash=s.hash, source=s.source, rows=s.rows, columns=s.columns)
        for k, s in snaps.items()
    }
    return SplitRows(train_df, test_df, how, snaps, snap_ids), store
