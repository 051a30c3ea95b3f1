"""``loopml init DIR --data FILE --target COLUMN``: a working project on the user's own data.

It reads the data once to check the columns it is told about and to fill in what the data
decides: the task (as ``data.task: auto`` would read it), date columns to leave out of the
features, and a first metric gate that a model must beat (the majority-class accuracy for a
classifier, R² > 0, i.e. better than predicting the mean, for a regressor). ``train.py`` is
gradient boosting with one-hot encoded text columns, which fits most tables as a start.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from loopml.data.sources import load_frame
from loopml.errors import DataError, UsageError

TRAIN_PY = '''"""Training function written by `loopml init --data`; edit freely.

loopml calls train(X, y, params, seed) with the feature columns and the target of the
training split, and needs back a fitted model with predict() (and predict_proba() for a
classifier) that takes the same columns. Keep preprocessing inside the returned Pipeline,
so that serving applies it too.
"""

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import {estimator}
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


def train(X: pd.DataFrame, y: pd.Series, params: dict, seed: int = 0) -> Pipeline:
    text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    encode = ColumnTransformer(
        [
            (
                "text",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    max_categories=params.get("max_categories", 50),
                    sparse_output=False,
                ),
                text,
            )
        ],
        remainder="passthrough",
    )
    model = {estimator}(
        max_iter=params.get("max_iter", 200),
        learning_rate=params.get("learning_rate", 0.1),
        random_state=seed,
    )
    return Pipeline([("encode", encode), ("model", model)]).fit(X, y)
'''


def _q(value: object) -> str:
    """A YAML scalar for any column name or path (JSON strings are valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


def _name(dest: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", dest.resolve().name).strip("-.") or "project"
    return name[:64]


#: the first gate asks this much more than chance (ROC AUC 0.5; balanced accuracy 1/k)
MARGIN = 0.1


def _plain(value: object) -> object:
    """A label as Python, so it prints as 0 or 'yes' and not np.int64(0)."""
    return value.item() if hasattr(value, "item") else value


def first_gate(
    frame: pd.DataFrame, target: str, task: str, *, time: str | None, id: str | None
) -> tuple[str, str, str, str]:
    """(metric, rule, why, note) of the first gate, measured on the test split that
    ``loopml run`` will make (same split function, defaults and seed), not on the whole file.

    Accuracy against the majority class is the wrong bar on imbalanced data (a model that
    always answers the majority class passes it exactly), so: binary -> ROC AUC above chance
    (0.5, whatever the class balance) by ``MARGIN``; multiclass -> macro recall (balanced
    accuracy; chance is 1/k) above chance by ``MARGIN``; regression -> R² > 0, better than
    predicting the mean.
    """
    from loopml.config import DataConfig
    from loopml.train.split import split

    data = DataConfig(train="-", target=target, time=time, id=id)
    rows = frame[frame[target].notna()].reset_index(drop=True)
    _, te, how = split(rows, data, task, seed=0)
    y_test = rows[target].iloc[te]
    where = f"test split {how}, {len(te):,} rows"
    if task == "regression":
        return "r2", ">= 0", "beat predicting the mean", f"First gate measured on the {where}."
    shares = y_test.value_counts(normalize=True)
    k = int(rows[target].nunique())
    majority = (
        f"always answering {_plain(shares.index[0])!r} is right {shares.iloc[0]:.1%} of the time"
    )
    if len(shares) < 2:
        note = (
            f"Warning: the {where} holds one class only; set data.test_from or data.split: "
            "stratified in loopml.yaml, or loopml run will not judge the model."
        )
    else:
        note = f"On the {where}: {majority}, which accuracy would reward."
    if k == 2:
        return (
            "roc_auc",
            f">= {0.5 + MARGIN:.2f}",
            f"rank positives above negatives better than chance (0.5) by {MARGIN:g}",
            note,
        )
    return (
        "recall",
        f">= {1 / k + MARGIN:.3f}",
        f"macro recall (balanced accuracy) above chance (1/{k}) by {MARGIN:g}",
        note,
    )


def write_own_project(
    dest: Path,
    data: str,
    target: str,
    *,
    time: str | None = None,
    id: str | None = None,
    sensitive: list[str] | None = None,
    force: bool = False,
) -> list[str]:
    """Write loopml.yaml and train.py for ``data`` into ``dest``; returns notes to print."""
    from loopml.train.inputs import guess_task, holds_dates, require_columns

    dest = Path(dest)
    source = Path(data).expanduser().resolve()
    frame = load_frame(str(source), Path.cwd())
    sensitive = list(sensitive or [])
    require_columns(frame, [target], "--target", source.name)
    require_columns(frame, [c for c in (time, id) if c], "--time/--id", source.name)
    require_columns(frame, sensitive, "--sensitive", source.name)
    y = frame[target].dropna()
    if y.empty:
        raise DataError(f"The target column {target!r} has no values.", field="--target")
    task = guess_task(y)
    dates = [c for c in frame.columns if c not in (target, time, id) and holds_dates(frame[c])]
    metric, bound, why, split_note = first_gate(frame, target, task, time=time, id=id)
    # the endpoint's decision metric: what the champion gate compares best for the task
    binary = task != "regression" and frame[target].nunique(dropna=True) == 2
    decision = "rmse" if task == "regression" else "roc_auc" if binary else "accuracy"
    estimator = (
        "HistGradientBoostingClassifier"
        if task == "classification"
        else "HistGradientBoostingRegressor"
    )
    try:
        path = str(source.relative_to(dest.resolve()))
    except ValueError:
        path = str(source)
    name = _name(dest)
    data_lines = [
        f"  train: {_q(path)}",
        f"  target: {_q(target)}",
        f"  task: {task}   # read from the target ({y.dtype}, {y.nunique()} distinct values)",
    ]
    if time:
        data_lines.append(f"  time: {_q(time)}   # the latest rows are the test set")
    if id:
        data_lines.append(f"  id: {_q(id)}")
    if sensitive:
        data_lines.append(f"  sensitive: [{', '.join(map(_q, sensitive))}]   # fairness gate")
    if dates:
        data_lines.append(
            f"  drop: [{', '.join(map(_q, dates))}]   # dates are not features; derive numbers"
        )
    text = "\n".join(
        [
            f"# loopml project on {source.name}, written by `loopml init --data`; edit freely.",
            f"project: {_q(name)}",
            "store: sqlite:///.loopml/loopml.db",
            "artifacts: .loopml/artifacts",
            "",
            "data:",
            *data_lines,
            "",
            "model:",
            f"  name: {_q(name)}",
            "  train: train.py:train",
            "  params: {max_iter: 200, learning_rate: 0.1}",
            "  format: skops",
            "",
            "gates:",
            "  metrics:",
            f"    thresholds: {{{_q(metric)}: {_q(bound)}}}   # {why}",
            "  data: {}",
            "  champion: {}   # a new version must not be worse than the endpoint's champion",
            "",
            "deploy:",
            f"  endpoint: {_q(name)}",
            f"  metric: {decision}   # one decision metric: champion gate, rollouts, decay",
            "  rollout: {shadow: 10m, steps: [10, 50, 100]}",
            "",
        ]
    )
    for existing in (dest / "loopml.yaml", dest / "train.py"):
        if existing.exists() and not force:
            raise UsageError(f"{existing} already exists; use --force to overwrite it.")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "loopml.yaml").write_text(text, encoding="utf-8")
    (dest / "train.py").write_text(TRAIN_PY.replace("{estimator}", estimator))
    notes = [
        f"{len(frame):,} rows, {frame.shape[1]} columns; task: {task}; first gate: "
        f"{metric} {bound} ({why}).",
        split_note,
    ]
    if dates:
        notes.append(f"Date columns left out of the features: {', '.join(map(str, dates))}.")
    if not sensitive:
        notes.append("No --sensitive columns: the fairness gate is off until you name some.")
    return notes
