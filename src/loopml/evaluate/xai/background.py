"""Background rows for explanations, drawn from a version's stored reference profile, and the
one way every caller (HTTP, CLI, dashboard, training) builds an explainer for a version.

The reference profile (written at ``loopml run``, see ``train/registration.py``) keeps a
quantile sketch per numeric column and level counts per text column, never raw rows. A
background row is drawn column by column: a number by inverse-CDF sampling (the sketch's
quantile at a uniform random rank), a level with its training frequency. Columns are drawn
independently, which is what the linear and permutation explainers assume of their
background anyway (shap's ``Independent`` masker).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import DataError
from loopml.evaluate.xai.explain import Budget, Explainer


def _profile_columns(artifacts: Any, version: Mapping[str, Any]) -> dict[str, Any]:
    from loopml.stats.column import column_from_dict

    digest = version.get("reference_profile")
    if not digest:
        raise DataError(
            f"Version {version.get('id')} has no reference profile to draw background rows "
            "from; re-register it with 'loopml run'.",
            field="reference_profile",
        )
    try:
        doc = json.loads(zlib.decompress(artifacts.get_bytes(digest)))
    except (zlib.error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"The reference profile {digest} cannot be read ({exc}); re-register the version.",
            field="reference_profile",
        ) from exc
    cols = doc["features"]["columns"]
    return {name: column_from_dict(d) for name, d in cols.items()}


def draw_background(
    profiles: dict[str, Any], signature: Any, n: int = 100, seed: int = 0
) -> pd.DataFrame:
    """``n`` rows of the signature's columns drawn from the column profiles (see module doc)."""
    from loopml.stats.categorical import OTHER

    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for col in signature.columns:
        prof = profiles.get(col.name)
        if prof is None:
            raise DataError(
                f"The reference profile has no column {col.name!r}; re-register the version.",
                field="reference_profile",
            )
        if prof.kind == "numeric":
            values, _ = prof.quantiles(np.sort(rng.random(n)))
            values = np.where(np.isfinite(values), values, prof.mean if prof.count else 0.0)
            if col.kind == "number" and np.dtype(col.dtype).kind in "iu":
                values = np.round(values).astype(col.dtype)
            data[col.name] = rng.permutation(values)
        else:
            freq = {k: v for k, v in prof.frequencies().items() if k != OTHER and v > 0}
            if not freq:
                raise DataError(f"Column {col.name!r} has no levels in the reference profile.")
            levels = list(freq)
            p = np.array([freq[k] for k in levels], dtype=np.float64)
            picked = np.array(levels, dtype=object)[rng.choice(len(levels), n, p=p / p.sum())]
            if col.kind == "bool":
                picked = np.array([str(v).lower() in ("true", "1") for v in picked])
            data[col.name] = picked
    return pd.DataFrame(data)


def version_explainer(
    artifacts: Any,
    version: Mapping[str, Any],
    model: Any,
    *,
    target_class: Any = None,
    method: str = "auto",
    budget: Budget | None = None,
) -> Explainer:
    """An :class:`Explainer` for a registered version's loaded ``model``: its signature's
    columns and task, and background rows from its reference profile when it has one."""
    from loopml.data.signature import Signature

    sig = Signature.from_dict(version["signature"])
    budget = budget or Budget()
    background = None
    if version.get("reference_profile"):
        background = draw_background(
            _profile_columns(artifacts, version), sig, budget.background_rows, budget.seed
        )
    return Explainer(
        model,
        features=sig.names,
        task=sig.task,
        target_class=target_class,
        background=background,
        budget=budget,
        method=method,
    )
