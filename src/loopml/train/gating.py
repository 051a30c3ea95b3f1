"""From the ``gates:`` section of loopml.yaml to gate objects, and running them on a
candidate. The gates themselves live in ``loopml.evaluate``; this module only wires config
and the run's data into them (the champion model, recent labelled rows, the training
function for gates that retrain)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopml.artifacts.store import ArtifactStore
from loopml.config import Config
from loopml.errors import ConfigError, LoopmlError, NotFoundError
from loopml.evaluate.gating.gates import blocks
from loopml.store import Store
from loopml.store.rows import VersionRow
from loopml.types import Mapper


def _key_path(field: str | None) -> list[Any]:
    """'gates.behaviour.tests.0.column' -> ['gates', 'behaviour', 'tests', 0, 'column']."""
    return [int(p) if p.isdigit() else p for p in (field or "gates").split(".")]


def _with_project_paths(cfg: Config, section: dict[str, Any]) -> dict[str, Any]:
    """MFT ``cases`` files are relative to the project folder, not the current directory."""
    behaviour = section.get("behaviour")
    if not isinstance(behaviour, dict) or not isinstance(behaviour.get("tests"), list):
        return section
    tests = behaviour["tests"]
    fixed = []
    for t in tests:
        if isinstance(t, dict) and isinstance(t.get("cases"), str):
            t = {**t, "cases": str(cfg.path(t["cases"]))}
        fixed.append(t)
    return {**section, "behaviour": {**behaviour, "tests": fixed}}


def build_gates(cfg: Config, task: str) -> list[Any]:
    """Gate objects for this project, validated before any training starts."""
    from loopml.evaluate.gating.gate_registry import build_gates as build

    section = _with_project_paths(cfg, cfg.gates.model_dump(exclude_none=True))
    try:
        return build(section, sensitive=cfg.data.sensitive, task=task)
    except ConfigError as e:
        where = cfg.where(_key_path(e.field))
        raise ConfigError(f"{where}: {e.message}", field=e.field) from None


def check_gates_on_data(gates: list[Any], cfg: Config, X: pd.DataFrame) -> None:
    """Before training: gate options that name columns or files are checked against the
    model's input columns (``X``), so a typo costs no training run and no rejected version."""
    for gate in gates:
        check = getattr(gate, "check_data", None)
        if check is None:
            continue
        try:
            check(X)
        except ConfigError as e:
            raise ConfigError(
                f"{cfg.where(_key_path(e.field))}: {e.message}", field=e.field
            ) from None


def champion_model(
    cfg: Config, store: Store, artifacts: ArtifactStore
) -> tuple[Any, VersionRow | None, str | None]:
    """The endpoint's current champion (model, version row, why it could not be loaded), to
    compare the candidate with. A champion that exists but cannot be loaded (a damaged or
    refused artifact, a module that no longer imports) is returned as ``(None, row, reason)``
    so that the champion gate fails closed instead of reporting "no champion yet"."""
    from loopml.artifacts.model_loader import load_for_project

    if cfg.deploy is None:
        return None, None, None
    try:
        ep = store.endpoints.get(cfg.deploy.endpoint)
    except NotFoundError:
        return None, None, None
    if ep["champion_id"] is None:
        return None, None, None
    row = store.versions.get(ep["champion_id"])
    try:
        model = load_for_project(artifacts, row, cfg)
    except LoopmlError as e:
        return None, row, e.message
    except Exception as e:  # e.g. a class whose module is gone: still the champion, not absent
        return None, row, f"{type(e).__name__}: {e}"
    return model, row, None


def run_all_gates(
    gates: list[Any],
    cfg: Config,
    store: Store,
    artifacts: ArtifactStore,
    *,
    model: Any,
    task: str,
    classes: Any,
    features: list[str],
    train_df: pd.DataFrame,
    test_df: pd.DataFrame,
    pred: np.ndarray,
    proba: np.ndarray | None,
    train_fn: Any,
    recent: pd.DataFrame | None = None,
    engine_map: Mapper | None = None,
) -> list[dict[str, Any]]:
    from loopml.evaluate.gating.gates import GateContext, run_gates

    champion, champion_row, champion_error = champion_model(cfg, store, artifacts)
    for gate in gates:  # the label gate quarantines rows by the data's id column
        if getattr(gate, "name", "") == "labels" and getattr(gate, "id_column", None) is None:
            gate.id_column = cfg.data.id
    ctx = GateContext(
        model=model,
        X_test=test_df[features],
        y_test=test_df[cfg.data.target],
        predictions=pred,
        proba=proba,
        sensitive=cfg.data.sensitive,
        segments=cfg.data.segments,
        train=train_df,
        target=cfg.data.target,
        task=task,
        classes=classes,
        champion=champion,
        recent=recent,
        test_frame=test_df,
        seed=cfg.model.seed,
        features=features,
        train_fn=train_fn,
        train_params=dict(cfg.model.params),
        reference_schema=champion_row["extra"].get("schema") if champion_row else None,
        champion_error=(
            f"the champion, version {champion_row['id']}, could not be loaded: {champion_error}"
            if champion_error and champion_row is not None
            else None
        ),
        engine_map=engine_map,
    )
    results = [r.to_dict() for r in run_gates(gates, ctx)]
    for r in results:
        if r["gate"] == "champion" and champion_row is not None:
            r["evidence"]["champion_version"] = champion_row["id"]
    return results


def verdict_counts(verdicts: list[dict[str, Any]]) -> str:
    """'5 gates: 3 passed, 1 not judged, 1 failed (blocking)' for the progress line."""
    from collections import Counter

    words = {"pass": "passed", "fail": "failed", "insufficient_data": "not judged"}
    counts = Counter(words.get(v["verdict"], v["verdict"]) for v in verdicts)
    blocked = sum(blocks(v) for v in verdicts)
    parts = ", ".join(f"{n} {w}" for w, n in counts.items())
    return f"{len(verdicts)} gates: {parts}" + (f"; {blocked} blocking" if blocked else "")
