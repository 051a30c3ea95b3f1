"""``loopml run``: load -> split -> train -> evaluate -> profile -> gate -> register.

Everything that can be checked without training is checked before the run is recorded
(``train.preflight``), so a bad config or a missing file leaves the store untouched. A
version is inserted in one transaction with its metrics, gate verdicts, artifact digest,
reference profile, signature and lineage: there is never a half-written version. A training
function that raises is recorded as a failed run (with its error) and nothing else.
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
from loopml.errors import LoopmlError, TrainingError
from loopml.evaluate.gating.gates import blocks
from loopml.evaluate.measure.holdout import judge_split
from loopml.progress import NullSteps, Steps
from loopml.store import Store
from loopml.store.rows import VersionRow
from loopml.train import environment
from loopml.train.heldout import evaluate
from loopml.train.inputs import (
    check_model_task,
    task_note,
)
from loopml.train.preflight import RunInputs, SplitRows, load_inputs, split_and_snapshot
from loopml.train.threads import thread_limits
from loopml.types import Mapper


@dataclass
class RunResult:
    run_id: int
    version: VersionRow | None
    passed: bool
    metrics: dict[str, Any]
    slices: list[dict[str, Any]]
    gates: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    split: str = ""


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


@dataclass
class _Job:
    """What the recorded part of a run works with."""

    cfg: Config
    store: Store
    artifacts: Any
    steps: Steps
    timings: dict[str, float]
    inputs: RunInputs
    parts: SplitRows
    engine_map: Mapper | None  # where retraining and re-predicting run (None: here)


@dataclass
class _Outcome:
    version: VersionRow
    verdicts: list[dict[str, Any]]
    passed: bool
    metrics: dict[str, Any]
    slices: list[dict[str, Any]]


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
    engine_map: Mapper | None = None,
) -> RunResult:
    """Train, evaluate, gate and register one version from ``cfg``. The gates' retraining and
    permutation importance run where ``engine_map`` runs work (an engine's ``map``)."""
    from loopml.artifacts.store import ArtifactStore

    steps = steps or NullSteps()
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    cpu0 = time.process_time()

    # ---- everything checkable before the run is recorded
    inputs = load_inputs(cfg, steps, timings, extra_frame, include_original)
    with steps.step("Split and snapshot"):
        t = time.perf_counter()
        parts, store = split_and_snapshot(cfg, store, inputs)
        artifacts = ArtifactStore(cfg.artifacts_root)
        timings["split"] = time.perf_counter() - t
        steps.note(
            f"split {parts.how}: {len(parts.train_df):,} train / {len(parts.test_df):,} test rows"
        )

    limits = contextlib.ExitStack()  # thread caps for the whole run's compute (train/threads.py)
    run_id, details = _start_run(cfg, store, parts, trigger, limits)
    try:
        out = _train_gate_register(
            _Job(cfg, store, artifacts, steps, timings, inputs, parts, engine_map),
            run_id=run_id,
            actor=actor,
            recent_frame=recent_frame,
            extra={**details},
        )
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
        metrics=out.metrics,
        wall_seconds=timings["total"],
        train_seconds=timings["train"],
        cpu_seconds=time.process_time() - cpu0,
        peak_memory_mb=environment.peak_memory_mb(),
    )
    return RunResult(
        run_id=run_id,
        version=out.version,
        passed=out.passed,
        metrics=out.metrics,
        slices=out.slices,
        gates=out.verdicts,
        timings=timings,
        split=parts.how,
    )


def _start_run(
    cfg: Config, store: Store, parts: SplitRows, trigger: str, limits: contextlib.ExitStack
) -> tuple[int, dict[str, Any]]:
    """Cap the compute's threads (until ``limits`` closes) and record the run's start with its
    code, environment and snapshots; returns the run's id and its details."""
    commit, dirty = environment.git_state(cfg.root)
    code = environment.code_lineage(cfg.root, cfg.model.train)
    threads = limits.enter_context(thread_limits(cfg.model.threads))
    details = {"code": code, "threads": threads}
    run_id = store.runs.start(
        details=details,
        project=cfg.project,
        model=cfg.model.name,
        trigger=trigger,
        params=cfg.model.params,
        snapshots={k: s.hash for k, s in parts.snaps.items()},
        git_commit=commit,
        git_dirty=dirty,
        python=environment.python_version(),
        packages=environment.packages(),
    )
    return run_id, details


def _train_gate_register(
    job: _Job,
    *,
    run_id: int,
    actor: str,
    recent_frame: pd.DataFrame | None,
    extra: dict[str, Any],
) -> _Outcome:
    """The recorded part of a run: train, evaluate, gate, then profile, save and register."""
    from loopml.train import registration

    cfg, store, steps, timings, parts = job.cfg, job.store, job.steps, job.timings, job.parts
    task, features, train_df, test_df = (
        job.inputs.task,
        job.inputs.features,
        parts.train_df,
        parts.test_df,
    )
    X_test, y_test = test_df[features], test_df[cfg.data.target]
    model = _fit(cfg, steps, timings, job.inputs, train_df)
    with steps.step("Evaluate overall and per slice"):
        t = time.perf_counter()
        pred, proba, classes, metrics, slices = evaluate(cfg, model, task, features, test_df)
        timings["evaluate"] = time.perf_counter() - t

    verdicts, passed = _gate(
        job,
        model,
        classes,
        pred,
        proba,
        recent_frame,
    )

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
            job.artifacts,
            model=model,
            run_id=run_id,
            signature=signature,
            train_df=train_df,
            features=features,
            metrics=metrics,
            slices=slices,
            verdicts=verdicts,
            passed=passed,
            snapshots={k: s.hash for k, s in parts.snaps.items()},
            snapshot_ids=parts.snap_ids,
            actor=actor,
            pred=pred,
            proba=proba,
            X_test=X_test,
            y_test=y_test,
            extra=extra,
            engine_map=job.engine_map,
        )
        timings["register"] = time.perf_counter() - t
    # registration may add a verdict (a refused artifact) and so reject the version
    return _Outcome(
        version, list(version["gates"]), version["status"] == "candidate", metrics, slices
    )


def _gate(
    job: _Job,
    model: Any,
    classes: list[Any] | None,
    pred: np.ndarray,
    proba: np.ndarray | None,
    recent_frame: pd.DataFrame | None,
) -> tuple[list[dict[str, Any]], bool]:
    """Run every gate (the split's own verdict first); passed: none of them blocks."""
    from loopml.train.gating import run_all_gates, verdict_counts

    cfg, steps, inputs, parts = job.cfg, job.steps, job.inputs, job.parts
    task, features, train_df, test_df = inputs.task, inputs.features, parts.train_df, parts.test_df
    y_train, y_test = train_df[cfg.data.target], test_df[cfg.data.target]
    with steps.step("Run gates"):
        t = time.perf_counter()
        verdicts = run_all_gates(
            inputs.gates,
            cfg,
            job.store,
            job.artifacts,
            model=model,
            task=task,
            classes=classes,
            features=features,
            train_df=train_df,
            test_df=test_df,
            pred=pred,
            proba=proba,
            train_fn=inputs.train_fn,
            recent=recent_frame,
            engine_map=job.engine_map,
        )
        verdicts.insert(0, judge_split(y_train, y_test, task, parts.how))
        passed = not any(blocks(v) for v in verdicts)
        job.timings["gates"] = time.perf_counter() - t
        steps.note(verdict_counts(verdicts))  # each verdict is printed once, by the report
    return verdicts, passed


def _fit(
    cfg: Config, steps: Steps, timings: dict[str, float], inputs: RunInputs, train_df: pd.DataFrame
) -> Any:
    """Train the user's model on the training rows and check it suits the task."""
    X_train, y_train = train_df[inputs.features], train_df[cfg.data.target]
    with steps.step(f"Train ({cfg.model.train})"):
        t = time.perf_counter()
        model = call_train(inputs.train_fn, X_train, y_train, cfg.model.params, cfg.model.seed)
        timings["train"] = time.perf_counter() - t
        check_model_task(model, inputs.task, task_note(cfg, inputs.y_all, inputs.task))
    return model
