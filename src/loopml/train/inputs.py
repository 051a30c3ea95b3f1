"""What a run takes from the data before anything is trained: the feature columns, the task,
the positive class, and (once trained) whether the model is the kind of model the task needs.
Each check raises an error that names the loopml.yaml key to change."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopml.config import Config
from loopml.errors import ConfigError, DataError, TrainingError


def require_columns(frame: pd.DataFrame, names: Any, key: str, source: str) -> None:
    """Refuse ``names`` (given by option ``key``) that are not columns of ``source``."""
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise DataError(
            f"{key} names {missing}, which is not a column of {source}. Columns there: "
            f"{', '.join(map(str, list(frame.columns)[:30]))}.",
            field=key,
        )


def holds_dates(column: pd.Series) -> bool:
    """Dates or durations: not a model input (requests carry numbers, booleans, strings)."""
    return bool(
        pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column)
    )


def infer_task(cfg: Config, y: pd.Series) -> str:
    """``data.task``, or with ``auto``: regression for a numeric target with fractional values
    or more than 20 distinct values (integer prices and counts too), else classification."""
    if cfg.data.task != "auto":
        return cfg.data.task
    return guess_task(y)


def guess_task(y: pd.Series) -> str:
    """The task ``data.task: auto`` reads from a target column (see :func:`infer_task`)."""
    if pd.api.types.is_bool_dtype(y) or not pd.api.types.is_numeric_dtype(y):
        return "classification"
    values = y.to_numpy(dtype=float)
    if y.nunique() > 20 or not np.array_equal(values, np.round(values)):
        return "regression"
    return "classification"


def task_note(cfg: Config, y: pd.Series, task: str) -> str:
    """Why the task is what it is, and how to change it (for messages about the task)."""
    if cfg.data.task != "auto":
        return f"data.task is {task!r}"
    return (
        f"the task was inferred as {task} from the target {cfg.data.target!r} "
        f"({y.dtype}, {y.nunique()} distinct values); set data.task to "
        f"{'regression' if task == 'classification' else 'classification'} if that is wrong"
    )


def feature_columns(cfg: Config, frame: pd.DataFrame) -> list[str]:
    d = cfg.data
    if d.features:
        require_columns(frame, d.features, "data.features", d.train)
        features = list(d.features)
        twice = sorted({c for c in features if features.count(c) > 1}, key=str)
        if twice:
            raise DataError(
                f"data.features lists {twice} more than once; list each column once.",
                field="data.features",
            )
    else:
        skip = {d.target, d.id, d.time, *d.drop}
        features = [c for c in frame.columns if c not in skip]
    if d.target in features:
        raise DataError(
            f"data.features lists the target {d.target!r}: the model would be given the answer. "
            "Remove it from data.features.",
            field="data.features",
        )
    # the signature (and so serving) knows numbers, booleans and categories only
    dates = [c for c in features if holds_dates(frame[c])]
    if dates:
        raise DataError(
            f"Feature column(s) {dates} hold dates or durations, which a served model cannot "
            "take as input (requests carry numbers, booleans and strings). Name it as data.time "
            "(used for the split, not as a feature), list it under data.drop, or derive numeric "
            "features from it (e.g. day of week, age in days) in your data.",
            field="data.features" if d.features else "data.drop",
        )
    return features


def check_columns(cfg: Config, frame: pd.DataFrame) -> None:
    d = cfg.data
    wanted = {
        "data.target": [d.target],
        "data.sensitive": d.sensitive,
        "data.segments": d.segments,
        "data.time": [d.time] if d.time else [],
        "data.id": [d.id] if d.id else [],
    }
    for key, cols in wanted.items():
        require_columns(frame, cols, key, d.train)
    if frame[d.target].isna().any():
        n = int(frame[d.target].isna().sum())
        raise DataError(
            f"The target column {d.target!r} has {n} missing values. Drop or label those "
            f"rows before training.",
            field="data.target",
        )


def check_positive_class(cfg: Config, y: pd.Series, task: str) -> None:
    """``data.positive_class`` must be a label, and the one loopml scores as positive.

    Metrics, fairness, calibration and the monitor take the positive class of a binary task as
    ``classes_[1]`` (the larger label, scikit-learn's ``predict_proba`` column 1); a different
    ``positive_class`` would be honoured by the monitor but not by the gates, so it is refused.
    """
    pc = cfg.data.positive_class
    if pc is None:
        return
    if task != "classification":
        raise ConfigError(
            f"data.positive_class is set ({pc!r}) but the task is {task}. Remove it, or set "
            "data.task: classification.",
            field="data.positive_class",
        )
    labels = [v.item() if hasattr(v, "item") else v for v in np.unique(y.to_numpy())]
    shown = ", ".join(repr(v) for v in labels[:10])
    if not any(pc == v for v in labels):
        quote = (
            f" YAML reads an unquoted {str(pc).lower()} as a boolean: write it in quotes."
            if isinstance(pc, bool)
            else ""
        )
        raise ConfigError(
            f"data.positive_class {pc!r} is not a label of the target {cfg.data.target!r} "
            f"(labels: {shown}).{quote}",
            field="data.positive_class",
        )
    if len(labels) == 2 and pc == labels[0]:
        raise ConfigError(
            f"data.positive_class is {pc!r}, but loopml scores the larger of the two labels "
            f"({labels[1]!r}, the model's classes_[1]) as the positive class in every metric and "
            f"gate. Recode the target so that {pc!r} sorts last (e.g. 1 for {pc!r} and 0 "
            f"otherwise), or remove data.positive_class to make {labels[1]!r} the positive class.",
            field="data.positive_class",
        )


def check_model_task(model: Any, task: str, note: str) -> None:
    """A classifier for a classification task, a regressor for regression (when the model
    says which it is), so metrics are never computed for the wrong kind of model."""
    from sklearn.base import is_classifier, is_regressor

    try:
        kind = (
            "classifier" if is_classifier(model) else "regressor" if is_regressor(model) else None
        )
    except Exception:  # a model outside scikit-learn's API: judge by its outputs later
        kind = None
    wanted = "classifier" if task == "classification" else "regressor"
    if kind is not None and kind != wanted:
        raise TrainingError(
            f"The training function returned a {kind} ({type(model).__name__}) but the task is "
            f"{task}: {note}. Return a {wanted}, or set data.task in loopml.yaml."
        )
