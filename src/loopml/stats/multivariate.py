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
from loopml.stats.profile import DatasetProfile, Frame

# rows on each side below which the classifier is not run: on a few hundred rows its no-drift
# AUC spreads too wide for the 0.55 threshold (sd ~0.03 at 200 rows), and each fit costs
# ~0.3 s, too much for the many small windows of a busy monitor
MIN_SAMPLE = 1_000


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
    max_iter: int = 100,
    max_leaf_nodes: int = 31,
) -> MultivariateDrift:
    """AUC of a classifier separating up to ``max_rows`` sampled rows of each side.

    ``max_iter`` and ``max_leaf_nodes`` size the boosted trees; the monitor uses a small model
    (30 trees of 15 leaves, 3 folds: ~0.3 s for 2,000 + 2,000 rows on one core, and a lower
    no-drift AUC than the default's, whose deeper trees fit noise on a few thousand rows).
    """
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
        max_iter=max_iter,
        max_leaf_nodes=max_leaf_nodes,
        early_stopping=False,
        categorical_features=np.array(is_cat),
        random_state=seed,
    )
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with threadpool_limits(limits=threads):
        scores = cross_val_score(clf, X, y, cv=cv, scoring="roc_auc")
    auc = float(np.mean(scores))
    return MultivariateDrift(
        auc, float(np.std(scores)), threshold, auc >= threshold, len(ref), len(cur), names
    )


def sample_drift(
    reference: DatasetProfile, window: DatasetProfile, *, max_rows: int = 2_000, seed: int = 0
) -> MultivariateDrift | None:
    """The domain classifier on two profiles' row samples (``reservoir.py``), with the small
    model the monitor uses (30 trees of 15 leaves, 3 folds); None when either profile has no
    sample or fewer than ``MIN_SAMPLE`` rows in it. Columns are the reference's profiled
    columns present in both samples (a target kept in the reference's sample is left out)."""
    rs, ws = reference.sample, window.sample
    if rs is None or ws is None or max_rows < 1 or rs.n < MIN_SAMPLE or ws.n < MIN_SAMPLE:
        return None
    columns = [c for c in reference.columns if c in ws.columns and c in rs.columns]
    return domain_classifier_drift(
        rs.to_pandas(),
        ws.to_pandas(),
        columns=columns,
        max_rows=max_rows,
        n_splits=3,
        max_iter=30,
        max_leaf_nodes=15,
        seed=seed,
    )
