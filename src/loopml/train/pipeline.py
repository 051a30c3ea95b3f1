"""``loopml run``: load -> split -> train -> evaluate -> profile -> gate -> register.

Everything that can be checked without training is checked before the run is recorded, so
a bad config or a missing file leaves the store untouched. A version is inserted in one
transaction with its metrics, gate verdicts, artifact digest, reference profile, signature
and lineage: there is never a half-written version. A training function that raises is
recorded as a failed run (with its error) and nothing else.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopml.config import Config
from loopml.data.signature import infer_signature
from loopml.data.snapshot import snapshot
from loopml.data.sources import load_callable, load_frame
from loopml.errors import ConfigError, LoopmlError, TrainingError
from loopml.evaluate.gates import blocks
from loopml.evaluate.holdout import judge_split
from loopml.progress import NullSteps, Steps
from loopml.store import Store
from loopml.train import environment
from loopml.train.inputs import (
    check_columns,
    check_model_task,
    check_positive_class,
    feature_columns,
    infer_task,
    task_note,
)
from loopml.train.threads import thread_limits

# gate options whose validity depends on the task (their errors say how the task was chosen)
TASK_FIELDS = ("gates.metrics", "gates.champion", "gates.fairness", "gates.behaviour")


@dataclass
class RunResult:
    run_id: int
    version: dict[str, Any] | None
    passed: bool
    metrics: dict[str, Any]
    slices: list[dict[str, Any]]
    gates: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    split: str = ""


def verdict_counts(verdicts: list[dict[str, Any]]) -> str:
    """'5 gates: 3 passed, 1 not judged, 1 failed (blocking)' for the progress line."""
    from collections import Counter

    words = {"pass": "passed", "fail": "failed", "insufficient_data": "not judged"}
    counts = Counter(words.get(v["verdict"], v["verdict"]) for v in verdicts)
    blocked = sum(blocks(v) for v in verdicts)
    parts = ", ".join(f"{n} {w}" for w, n in counts.items())
    return f"{len(verdicts)} gates: {parts}" + (f"; {blocked} blocking" if blocked else "")


def call_train(fn: Any, X: pd.DataFrame, y: pd.Series, params: dict[str, Any], seed: int) -> Any:
    """Call the user's ``train(X, y, params)`` (passing ``seed=`` when it accepts one)."""
    kwargs = {"seed": seed} if "seed" in inspect.signature(fn).parameters else {}
    try:
        model = fn(X, y, dict(params), **kwargs)
    except Exception as e:
        raise TrainingError(
            f"The training function raised {type(e).__name__}: {e}. Fix it and run again; no "
            f"version was registered (the failed run is recorded with this error)."
        ) from e
    if not hasattr(model, "predict"):
        raise TrainingError(
            f"The training function returned {type(model).__name__}, which has no "
            f"predict(); it must return a fitted model (e.g. a scikit-learn Pipeline)."
        )
    return model


def predict(model: Any, X: pd.DataFrame, task: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions and (for a classifier) probabilities on ``X``, equal to ``model.predict``;
    one ``predict_proba`` pass where :func:`loopml.evaluate.predictions.predicts_argmax`."""
    from loopml.evaluate.predictions import from_proba, predicts_argmax

    if task != "classification" or not hasattr(model, "predict_proba"):
        return np.asarray(model.predict(X)), None
    proba = np.asarray(model.predict_proba(X), dtype=float)
    if not predicts_argmax(model) or proba.ndim != 2 or proba.shape[1] != len(model.classes_):
        return np.asarray(model.predict(X)), proba
    return from_proba(model, X, proba), proba


def run(
    cfg: Config,
    *,
    store: Store | None = None,
    steps: Steps | None = None,
    trigger: str = "manual",
    actor: str = "loopml run",
    extra_frame: pd.DataFrame | None = None,
    recent_frame: pd.DataFrame | None = None,
    include_original: bool = True,
) -> RunResult:
    """Train, evaluate, gate and register one version from ``cfg``."""
    from loopml.artifacts.store import ArtifactStore
    from loopml.evaluate.metrics import classification_metrics, regression_metrics
    from loopml.evaluate.slices import metrics_by_slice
    from loopml.train import registration
    from loopml.train.gating import build_gates, check_gates_on_data, run_all_gates

    steps = steps or NullSteps()
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    cpu0 = time.process_time()

    # ---- everything checkable before the run is recorded
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

    from loopml.train.split import split

    with steps.step("Split and snapshot"):
        t = time.perf_counter()
        tr, te, how = split(frame, cfg.data, task, cfg.model.seed)
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
        artifacts = ArtifactStore(cfg.artifacts_root)
        snap_ids = {
            k: store.snapshots.ensure(hash=s.hash, source=s.source, rows=s.rows, columns=s.columns)
            for k, s in snaps.items()
        }
        timings["split"] = time.perf_counter() - t
        steps.note(f"split {how}: {len(tr):,} train / {len(te):,} test rows")

    commit, dirty = environment.git_state(cfg.root)
    code = environment.code_lineage(cfg.root, cfg.model.train)
    limits = contextlib.ExitStack()  # thread caps for the whole run's compute (train/threads.py)
    threads = limits.enter_context(thread_limits(cfg.model.threads))
    run_id = store.runs.start(
        details={"code": code, "threads": threads},
        project=cfg.project,
        model=cfg.model.name,
        trigger=trigger,
        params=cfg.model.params,
        snapshots={k: s.hash for k, s in snaps.items()},
        git_commit=commit,
        git_dirty=dirty,
        python=environment.python_version(),
        packages=environment.packages(),
    )
    try:
        X_train, y_train = train_df[features], train_df[cfg.data.target]
        X_test, y_test = test_df[features], test_df[cfg.data.target]
        with steps.step(f"Train ({cfg.model.train})"):
            t = time.perf_counter()
            model = call_train(train_fn, X_train, y_train, cfg.model.params, cfg.model.seed)
            timings["train"] = time.perf_counter() - t
            check_model_task(model, task, task_note(cfg, y_all, task))

        with steps.step("Evaluate overall and per slice"):
            t = time.perf_counter()
            try:
                pred, proba = predict(model, X_test, task)
            except Exception as e:
                why = (str(e).strip().splitlines() or [""])[0][:300]
                raise TrainingError(
                    f"The trained model cannot predict the held-out rows: {type(e).__name__}: "
                    f"{why} It is given the same columns as in training "
                    f"({len(features)}: {', '.join(map(str, features[:10]))}"
                    f"{' ...' if len(features) > 10 else ''}) and must predict from them as they "
                    "are: put any column selection or preprocessing (imputing NaNs, encoding "
                    "strings) inside the returned model, e.g. a scikit-learn Pipeline, or list "
                    "the columns it takes in data.features."
                ) from e
            classes = list(getattr(model, "classes_", [])) or None
            if task == "classification":
                metrics = classification_metrics(y_test, pred, proba, classes=classes)
            else:
                metrics = regression_metrics(y_test, pred)
            slices = metrics_by_slice(
                test_df,
                y_test,
                pred,
                proba,
                sensitive=cfg.data.sensitive,
                segments=cfg.data.segments,
                task=task,
                classes=classes,
            )
            timings["evaluate"] = time.perf_counter() - t

        with steps.step("Run gates"):
            t = time.perf_counter()
            verdicts = run_all_gates(
                gates,
                cfg,
                store,
                artifacts,
                model=model,
                task=task,
                classes=classes,
                features=features,
                train_df=train_df,
                test_df=test_df,
                pred=pred,
                proba=proba,
                train_fn=train_fn,
                recent=recent_frame,
            )
            verdicts.insert(0, judge_split(y_train, y_test, task, how))
            passed = not any(blocks(v) for v in verdicts)
            timings["gates"] = time.perf_counter() - t
            steps.note(verdict_counts(verdicts))  # each verdict is printed once, by the report

        with steps.step("Profile, save and register"):
            t = time.perf_counter()
            signature = infer_signature(
                train_df,
                features,
                task=task,  # type: ignore[arg-type]
                target=cfg.data.target,
                classes=classes,
            )
            version = registration.register(
                cfg,
                store,
                artifacts,
                model=model,
                run_id=run_id,
                signature=signature,
                train_df=train_df,
                features=features,
                metrics=metrics,
                slices=slices,
                verdicts=verdicts,
                passed=passed,
                snapshots={k: s.hash for k, s in snaps.items()},
                snapshot_ids=snap_ids,
                actor=actor,
                pred=pred,
                proba=proba,
                X_test=X_test,
                y_test=y_test,
                extra={"code": code, "threads": threads},
            )
            timings["register"] = time.perf_counter() - t
            # registration may add a verdict (a refused artifact) and so reject the version
            verdicts, passed = list(version["gates"]), version["status"] == "candidate"
    except BaseException as e:
        limits.close()
        store.runs.finish(
            run_id,
            status="failed",
            error=str(e) if isinstance(e, LoopmlError) else f"{type(e).__name__}: {e}",
            wall_seconds=time.perf_counter() - t_all,
            cpu_seconds=time.process_time() - cpu0,
            peak_memory_mb=environment.peak_memory_mb(),
        )
        raise
    limits.close()
    timings["total"] = time.perf_counter() - t_all
    store.runs.finish(
        run_id,
        status="succeeded",
        metrics=metrics,
        wall_seconds=timings["total"],
        train_seconds=timings["train"],
        cpu_seconds=time.process_time() - cpu0,
        peak_memory_mb=environment.peak_memory_mb(),
    )
    return RunResult(
        run_id=run_id,
        version=version,
        passed=passed,
        metrics=metrics,
        slices=slices,
        gates=verdicts,
        timings=timings,
        split=how,
    )
