"""Explanations on dashboard pages: a window's attribution drift and fairness gap, and the
review queue's per-row explanations, computed from the logged rows with the library
(:mod:`loopml.evaluate.xai.explain`, :mod:`loopml.evaluate.xai.attribution`), the same functions
``POST /explain`` and ``loopml explain`` call.

The monitor keeps no attributions (it profiles inputs and outputs, see
:mod:`loopml.monitor.windows`), so a window's are computed here from a sample of its logged
rows (at most :data:`WINDOW_ROWS`) and set against the version's global view stored at
registration (``extra.explanation``). Explainers are cached per version: building one converts
the model (about a second for the employment model).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.config import Config
from loopml.evaluate.xai.attribution import attribution_drift, explain_gaps, mean_abs
from loopml.evaluate.xai.explain import Budget, Explainer, Explanation
from loopml.store import Store
from loopml.store.rows import VersionRow

WINDOW_ROWS = 300
GAP_ROWS = 200
TOP = 5
_CACHE: OrderedDict[tuple[str, int], tuple[Explainer, VersionRow, threading.Lock]] = OrderedDict()
_CACHE_SIZE = 8
_lock = threading.Lock()


def explainer_for(
    store: Store, cfg: Config, version_id: int
) -> tuple[Explainer, VersionRow, threading.Lock]:
    """(explainer, version row, its lock) for a registered version, cached."""
    from loopml.artifacts.model_loader import load_for_project
    from loopml.artifacts.store import ArtifactStore
    from loopml.evaluate.xai.background import version_explainer

    key = (cfg.store_url, int(version_id))
    with _lock:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    row = store.versions.get(int(version_id))
    artifacts = ArtifactStore(cfg.artifacts_root)
    model = load_for_project(artifacts, row, cfg)
    k = len((row.get("signature") or {}).get("columns") or [])
    explainer = version_explainer(
        artifacts, row, model, budget=Budget(background_rows=25, max_evals=2 * k + 1)
    )
    entry = (explainer, row, threading.Lock())
    with _lock:
        _CACHE[key] = entry
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return entry


def model_rows(row: VersionRow, table: pa.Table) -> pd.DataFrame:
    """The model's input frame from logged rows (typed by the version's signature)."""
    from loopml.data.signature import Signature
    from loopml.serve.wire.validation import Validator

    sig = Signature.from_dict(row["signature"])
    validator = Validator(sig, extra="drop", unseen="accept", allow_nulls=True)
    n = table.num_rows
    columns = {
        c: table.column(c).to_pylist() if c in table.column_names else [None] * n for c in sig.names
    }
    return validator.frame(validator.validate(columns))


def _explain(entry: tuple[Explainer, VersionRow, threading.Lock], X: pd.DataFrame) -> Explanation:
    explainer, _, lock = entry
    with lock:
        return explainer.explain(X)


def top_attributions(result: Explanation, i: int, k: int = TOP) -> list[dict[str, Any]]:
    """Row ``i``'s ``k`` largest attributions by size, with their sign."""
    order = np.argsort(-np.abs(result.attributions[i]), kind="stable")[:k]
    return [
        {"feature": result.columns[j], "attribution": float(result.attributions[i, j])}
        for j in order
    ]


_WINDOWS: OrderedDict[tuple[str, int, Any], dict[str, Any]] = OrderedDict()


def window_explanation(
    store: Store, cfg: Config, w: dict[str, Any], fairness: dict[str, Any]
) -> dict[str, Any]:
    """A window's attribution drift against the version's registration-time view and, when
    sensitive attributes were logged, the fairness gap between its lowest and highest
    selection-rate groups explained. Never raises: a failure becomes ``error``. Kept per
    window (and its computation time, which changes when late rows are re-monitored)."""
    key = (cfg.store_url, int(w["id"]), w.get("computed_at") or w.get("rows"))
    with _lock:
        if key in _WINDOWS:
            return _WINDOWS[key]
    out = _window_explanation(store, cfg, w, fairness)
    if "error" not in out:
        with _lock:
            _WINDOWS[key] = out
            while len(_WINDOWS) > 64:
                _WINDOWS.popitem(last=False)
    return out


def _window_explanation(
    store: Store, cfg: Config, w: dict[str, Any], fairness: dict[str, Any]
) -> dict[str, Any]:
    from loopml.logs.layout import log_location
    from loopml.logs.logreader import read_log

    try:
        entry = explainer_for(store, cfg, int(w["version"]))
        row = entry[1]
        log = read_log(
            log_location(cfg),
            w["endpoint"],
            datetime.fromtimestamp(float(w["start"]), UTC),
            datetime.fromtimestamp(float(w["end"]), UTC),
        )
        if log.num_rows:
            keep = pc.and_(
                pc.equal(log.column("_version"), int(w["version"])),
                pc.equal(log.column("_role"), str(w["role"])),
            )
            log = log.filter(keep)
        if not log.num_rows:
            return {"error": "no logged rows of this version in the window"}
        rng = np.random.default_rng(int(w["id"]))
        sample = np.sort(rng.choice(log.num_rows, min(WINDOW_ROWS, log.num_rows), replace=False))
        rows = log.take(pa.array(sample))
        result = _explain(entry, model_rows(row, rows))
        current = mean_abs(result)
        stored = (row.get("extra") or {}).get("explanation") or {}
        same_units = stored.get("output") == result.output and stored.get("mean_abs")
        out: dict[str, Any] = {
            "output": result.output,
            "method": result.method,
            "rows": len(result.values),
            "window_rows": log.num_rows,
            "mean_abs": current,
            "drift": attribution_drift(stored["mean_abs"], current) if same_units else None,
            "reference_note": None
            if same_units
            else "the version has no registration-time attributions in these units",
            "gap": _window_gap(entry, row, log, fairness, cfg),
        }
        return out
    except Exception as exc:  # a page shows what it can
        return {"error": f"{type(exc).__name__}: {exc}"}


def _window_gap(
    entry: Any, row: VersionRow, log: pa.Table, fairness: dict[str, Any], cfg: Config
) -> dict[str, Any] | None:
    groups = [g for g in fairness.get("selection") or [] if g.get("sufficient")]
    if len(groups) < 2:
        return None
    worst = min(groups, key=lambda g: g.get("selection_rate") or 0.0)
    best = max(groups, key=lambda g: g.get("selection_rate") or 0.0)
    sensitive = [c for c in cfg.data.sensitive if c in log.column_names]
    if not sensitive:
        return None
    frame = pd.DataFrame({c: log.column(c).to_pylist() for c in sensitive})
    X = model_rows(row, log)
    explainer, _, lock = entry
    with lock:
        (g,) = explain_gaps(
            explainer, X, frame, [(worst["group"], best["group"])], max_rows=GAP_ROWS
        )
    ratio = fairness.get("ratio")
    g["flagged"] = ratio is not None and ratio < cfg.monitor.fairness_threshold
    return g


def review_explanations(store: Store, cfg: Config, items: list[dict[str, Any]]) -> str | None:
    """Attach ``explanation`` (value, base value, output, the top attributions) to each review
    item, explaining every row with the version that answered it. Returns an error note, or
    ``None``."""
    by_version: dict[int, list[int]] = {}
    for i, item in enumerate(items):
        by_version.setdefault(int(item["version"]), []).append(i)
    try:
        for version, idx in by_version.items():
            entry = explainer_for(store, cfg, version)
            cols = sorted({f for i in idx for f in items[i]["features"]})
            table = pa.table({c: [items[i]["features"].get(c) for i in idx] for c in cols})
            result = _explain(entry, model_rows(entry[1], table))
            for j, i in enumerate(idx):
                items[i]["explanation"] = {
                    "output": result.output,
                    "method": result.method,
                    "value": float(result.values[j]),
                    "base_value": float(result.base_values[j]),
                    "top": top_attributions(result, j),
                }
    except Exception as exc:
        return f"explanations unavailable ({type(exc).__name__}: {exc})"
    return None
