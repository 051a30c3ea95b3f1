"""Explanations stored per version: permutation importance on held-out rows, and how it shifted
against the champion.

Permutation importance (Breiman 2001; scikit-learn's ``permutation_importance``) is the drop in
a score when one feature's values are shuffled: model-agnostic, on held-out data, and in the
units of the score. It takes 5.9-12.9 s for 5k rows x 5 repeats on a 20-feature model
(docs/design/measurements.md, "Permutation importance"), so the rows are capped
(``max_rows``) and the repeats few. The score is a plain callable (ROC AUC from ``predict_proba`` for a binary classifier, accuracy otherwise, R²
for regression), so a user's model that is not a scikit-learn estimator works too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from loopml.errors import ConfigError
from loopml.types import Mapper, in_process

SCORINGS = ("auto", "roc_auc", "accuracy", "r2")
PARTS = 8  # frames of shuffled copies per table: work for up to 8 workers, 9 predict calls


def _scorer(scoring: str, y: np.ndarray, task: str, model: Any) -> tuple[str, Any]:
    """(name, score(outputs, y)) where outputs come from :func:`_outputs`."""
    from sklearn.metrics import accuracy_score, r2_score

    from loopml.evaluate.measure.auc import roc_auc

    if scoring == "auto":
        if task == "regression":
            scoring = "r2"
        elif hasattr(model, "predict_proba") and len(np.unique(y)) == 2:
            scoring = "roc_auc"
        else:
            scoring = "accuracy"
    if scoring == "roc_auc":
        classes = list(getattr(model, "classes_", np.unique(y)))
        pos = classes[1] if len(classes) == 2 else None
        if pos is None:
            raise ConfigError("roc_auc importance needs a binary classifier.", field="scoring")
        return scoring, lambda out, yy: roc_auc(np.asarray(yy) == pos, out)
    if scoring == "accuracy":
        return scoring, lambda out, yy: accuracy_score(yy, out)
    if scoring == "r2":
        return scoring, lambda out, yy: r2_score(yy, out)
    raise ConfigError(
        f"Unknown importance scoring {scoring!r}; valid: {', '.join(SCORINGS)}.", field="scoring"
    )


def _outputs(scoring: str, model: Any, X: pd.DataFrame) -> np.ndarray:
    if scoring == "roc_auc":
        return np.asarray(model.predict_proba(X))[:, 1]
    return np.asarray(model.predict(X))


def _predict(frame: pd.DataFrame, shared: tuple[Any, ...]) -> np.ndarray:
    """The outputs the score reads, for one frame of shuffled copies (on an engine's worker)."""
    name, model = shared
    return _outputs(name, model, frame)


def _stacked(
    X: pd.DataFrame,
    cols: list[str],
    group: np.ndarray,
    moved: list[np.ndarray],
    new_values: list[np.ndarray],
    n_repeats: int,
) -> pd.DataFrame:
    """For the columns ``group`` (indices into ``cols``), per column and repeat the rows it
    changes, with that column shuffled: one frame, predicted in one call."""
    keys = [k for j in group for k in range(j * n_repeats, (j + 1) * n_repeats)]
    idx = np.concatenate([moved[k] for k in keys]) if keys else np.zeros(0, dtype=int)
    frame = X.iloc[idx].reset_index(drop=True)
    ends = np.cumsum([0, *(len(moved[k]) for k in keys)])
    for j in group:
        column = X[cols[j]].to_numpy()[idx]
        for i, k in enumerate(keys):
            if k // n_repeats == j:
                column[ends[i] : ends[i + 1]] = new_values[k]
        frame[cols[j]] = column
    return frame


def _unchanged(values: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Rows where a shuffled column holds its original value (NaN equals NaN); none when the
    values cannot be compared (``pd.NA``), so that every row is predicted."""
    try:
        same = np.asarray(values == original, dtype=bool)
    except (TypeError, ValueError):
        return np.zeros(len(values), dtype=bool)
    return same | (pd.isna(values) & pd.isna(original))


def permutation_importance_table(
    model: Any,
    X: pd.DataFrame,
    y: Any,
    *,
    features: Sequence[str] | None = None,
    task: str = "classification",
    scoring: str = "auto",
    n_repeats: int = 3,
    max_rows: int = 3000,
    seed: int = 0,
    engine_map: Mapper | None = None,
) -> list[dict[str, Any]]:
    """``[{"feature", "importance", "std", "rank", "scoring"}]`` from most to least important.

    Only ``features`` (default: all columns of ``X``) are shuffled, on at most ``max_rows``
    random rows; ``importance`` is the mean drop of the score over ``n_repeats`` shuffles.
    The shuffled copies are predicted where ``engine_map`` runs work (default: here).
    """
    y = np.asarray(y)
    if len(X) != len(y):
        raise ConfigError(f"X has {len(X)} rows but y has {len(y)}; they must align.")
    if max_rows and len(X) > max_rows:
        idx = np.sort(np.random.default_rng(seed).choice(len(X), max_rows, replace=False))
        X, y = X.iloc[idx], y[idx]
    name, scorer = _scorer(scoring, y, task, model)
    cols = list(features) if features is not None else list(X.columns)
    missing = [c for c in cols if c not in X.columns]
    if missing:
        raise ConfigError(f"Features {missing[:5]} are not columns of X.", field="features")
    X = X.reset_index(drop=True)
    n = len(X)
    # The same shuffles as scikit-learn's permutation_importance(random_state=seed), but the
    # shuffled copies are stacked and scored in PARTS + 1 predict calls: a pipeline's per-call
    # cost (column transforms, validation) is paid 9 times instead of features x repeats times.
    # A row whose shuffled value equals its own is the unshuffled row, so it keeps the
    # unshuffled output and is not stacked (a yes/no column leaves half its rows or more alone).
    seed2 = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    rs, perm, perms = np.random.RandomState(seed2), np.arange(n), []
    for _ in range(n_repeats):
        rs.shuffle(perm)
        perms.append(perm.copy())
    moved, new_values = [], []  # per (column, repeat): the rows it changes, their new values
    for col in cols:
        original = X[col].to_numpy()
        values = original
        for p in perms:  # as scikit-learn: each repeat shuffles the previous repeat's column
            values = values[p]
            rows = np.flatnonzero(~_unchanged(values, original))
            moved.append(rows)
            new_values.append(values[rows])
    # the copies in PARTS frames of whole columns, predicted where engine_map runs work: the
    # same frames on every engine, so the outputs (and importances) are the same too
    groups = [g for g in np.array_split(np.arange(len(cols)), PARTS) if len(g)]
    frames = [X, *(_stacked(X, cols, g, moved, new_values, n_repeats) for g in groups)]
    frames = [f for f in frames if len(f)]  # a constant column changes no row: nothing to predict
    out = np.concatenate(list((engine_map or in_process)(_predict, frames, shared=(name, model))))
    base, at, scores_ = out[:n], n, [scorer(out[:n], y)]
    for rows in moved:
        shuffled = base.copy()
        shuffled[rows] = out[at : at + len(rows)]
        at += len(rows)
        scores_.append(scorer(shuffled, y))
    scores = np.array(scores_)
    drops = (scores[0] - scores[1:]).reshape(len(cols), n_repeats)

    class _Result:
        importances_mean = drops.mean(axis=1)
        importances_std = drops.std(axis=1)

    result = _Result()
    order = np.argsort(-result.importances_mean, kind="stable")
    return [
        {
            "feature": cols[i],
            "importance": float(result.importances_mean[i]),
            "std": float(result.importances_std[i]),
            "rank": r + 1,
            "scoring": name,
        }
        for r, i in enumerate(order)
    ]


def importance_shift(
    candidate: Sequence[dict[str, Any]], champion: Sequence[dict[str, Any]], *, top_k: int = 5
) -> dict[str, Any]:
    """How the candidate's importance ranking moved against the champion's.

    Spearman rank correlation of the importances over the features both have (scipy), the
    top-``top_k`` of each, the features that entered or left the top-k, and per-feature rank
    changes (largest moves first).
    """
    from scipy.stats import spearmanr

    cand = {r["feature"]: r for r in candidate}
    champ = {r["feature"]: r for r in champion}
    common = [f for f in cand if f in champ]
    rho = None
    if len(common) >= 3:
        a = [cand[f]["importance"] for f in common]
        b = [champ[f]["importance"] for f in common]
        if np.ptp(a) > 0 and np.ptp(b) > 0:
            rho = float(spearmanr(a, b).statistic)

    def ranked(table: dict[str, dict[str, Any]]) -> list[str]:
        return sorted(table, key=lambda f: -table[f]["importance"])

    rc, rh = ranked(cand), ranked(champ)
    top_c, top_h = rc[:top_k], rh[:top_k]
    moves = [
        {
            "feature": f,
            "candidate_rank": rc.index(f) + 1,
            "champion_rank": rh.index(f) + 1,
            "change": rh.index(f) - rc.index(f),
            "candidate_importance": cand[f]["importance"],
            "champion_importance": champ[f]["importance"],
        }
        for f in common
    ]
    moves.sort(key=lambda m: (-abs(m["change"]), m["candidate_rank"]))
    return {
        "spearman": rho,
        "n_common": len(common),
        "top_k": top_k,
        "top_candidate": top_c,
        "top_champion": top_h,
        "entered_top_k": [f for f in top_c if f not in top_h],
        "left_top_k": [f for f in top_h if f not in top_c],
        "only_candidate": [f for f in cand if f not in champ],
        "only_champion": [f for f in champ if f not in cand],
        "rank_changes": moves,
    }
