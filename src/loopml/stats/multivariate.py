"""Multivariate drift by a domain classifier: can a model tell reference rows from current ones?

The cross-validated ROC AUC of a classifier trained to separate a sample of the reference from
a sample of the current window (Rabanser et al., "Failing loudly", NeurIPS 2019; Evidently and
NannyML offer the same idea). AUC near 0.5 means the windows look alike; the default threshold
0.55 is Evidently's. scikit-learn's HistGradientBoostingClassifier handles missing values and
categorical codes natively, so no imputation or one-hot step is needed. Its OpenMP threads are
capped (``threads=1`` by default): on a busy 2-core machine, oversubscribed OpenMP made a 6,000-row
fit 40x slower.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import DataError
from loopml.stats.profile import Frame


@dataclass
class MultivariateDrift:
    """Cross-validated AUC of reference vs current, and whether it crosses the threshold."""

    auc: float
    auc_std: float
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    columns: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sample(frame: Frame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = len(frame) if isinstance(frame, pd.DataFrame) else frame.num_rows
    idx = np.sort(rng.choice(rows, size=min(n, rows), replace=False))
    if isinstance(frame, pd.DataFrame):
        return frame.iloc[idx].reset_index(drop=True)
    return frame.take(idx).to_pandas()


def domain_classifier_drift(
    reference: Frame,
    current: Frame,
    *,
    columns: list[str] | None = None,
    max_rows: int = 10_000,
    n_splits: int = 5,
    threshold: float = 0.55,
    seed: int = 0,
    threads: int = 1,
) -> MultivariateDrift:
    """AUC of a classifier separating up to ``max_rows`` sampled rows of each side."""
    # Imported here: scikit-learn takes seconds and ~60 MB to import, and profiles never need it.
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    ref, cur = _sample(reference, max_rows, rng), _sample(current, max_rows, rng)
    names = columns or [c for c in ref.columns if c in set(cur.columns)]
    if not names or len(ref) < n_splits or len(cur) < n_splits:
        raise DataError(
            f"the domain classifier needs shared columns and at least {n_splits} rows "
            f"on each side; got {len(names)} columns, {len(ref)} and {len(cur)} rows",
            field="current",
        )
    both = pd.concat([ref[names], cur[names]], ignore_index=True)
    features, is_cat = {}, []
    for name in names:
        col = both[name]
        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            features[name] = col.to_numpy(dtype=np.float64, na_value=np.nan)
            is_cat.append(False)
        else:
            codes = pd.Categorical(col.astype("string")).codes.astype(np.float64)
            codes[codes < 0] = np.nan
            # HistGradientBoosting takes at most 255 categories; rarer codes become numeric ranks.
            features[name] = codes
            is_cat.append(bool(np.nanmax(codes, initial=0) < 255))
    X = np.column_stack(list(features.values()))
    y = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    clf = HistGradientBoostingClassifier(
        max_iter=100, categorical_features=np.array(is_cat), random_state=seed
    )
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with threadpool_limits(limits=threads):
        scores = cross_val_score(clf, X, y, cv=cv, scoring="roc_auc")
    auc = float(np.mean(scores))
    return MultivariateDrift(
        auc, float(np.std(scores)), threshold, auc >= threshold, len(ref), len(cur), names
    )
