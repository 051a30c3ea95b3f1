"""Which of the user's original columns each encoded column came from, so attributions on a
pipeline's encoded inputs (one-hot levels, scaled numbers) add back up to the user's columns.

scikit-learn has no public "input column of output column j" map: ``get_feature_names_out``
gives names, and a one-hot name is ``<column>_<level>``, which is ambiguous as soon as a column
name holds an underscore. So this module walks the steps itself: a ``ColumnTransformer``
says which inputs each of its transformers took (``transformers_``) and where their outputs
went (``output_indices_``); inside one transformer an output belongs to the input whose name
is its longest prefix (one-to-one when the counts match). An output no rule places (a PCA
mixing columns) is attributed to the joined names of all the inputs it may come from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def split_pipeline(model: Any) -> tuple[list[Any], Any]:
    """``(transform steps, final estimator)`` of a scikit-learn Pipeline (``([], model)`` else)."""
    steps = getattr(model, "steps", None)
    if not isinstance(steps, list) or not steps:
        return [], model
    pre = [s for _, s in steps[:-1] if s is not None and s != "passthrough"]
    inner, final = split_pipeline(steps[-1][1])
    return pre + inner, final


def transform(steps: Sequence[Any], X: Any) -> np.ndarray:
    """``X`` through the transform steps, as a dense float64 array."""
    out = X
    for step in steps:
        out = step.transform(out)
    if hasattr(out, "toarray"):
        out = out.toarray()
    elif hasattr(out, "to_numpy"):
        out = out.to_numpy()
    return np.asarray(out, dtype=np.float64)


def _names_out(step: Any, inputs: list[str]) -> list[str] | None:
    try:
        return [str(n) for n in step.get_feature_names_out(inputs)]
    except Exception:
        try:
            return [str(n) for n in step.get_feature_names_out()]
        except Exception:
            return None


def _within(step: Any, inputs: list[str], n_out: int) -> list[frozenset[str]]:
    """Sources of each of ``n_out`` outputs of one fitted transformer fed ``inputs``."""
    if n_out == len(inputs) and type(step).__name__ != "PCA":
        names = _names_out(step, inputs)
        if names is None or names == inputs or len(set(names)) != n_out:
            return [frozenset([c]) for c in inputs]
    if len(inputs) == 1:
        return [frozenset(inputs)] * n_out
    names = _names_out(step, inputs)
    everything = frozenset(inputs)
    if names is None or len(names) != n_out:
        return [everything] * n_out
    by_length = sorted(inputs, key=len, reverse=True)
    out = []
    for name in names:
        hit = next((c for c in by_length if name == c or name.startswith(c + "_")), None)
        out.append(frozenset([hit]) if hit is not None else everything)
    return out


def _column_transformer(ct: Any, sources: list[frozenset[str]], n_out: int) -> list[frozenset[str]]:
    names_in = [str(n) for n in getattr(ct, "feature_names_in_", range(len(sources)))]
    position = {n: i for i, n in enumerate(names_in)}
    out: list[frozenset[str]] = [frozenset()] * n_out
    for name, step, cols in ct.transformers_:
        if step == "drop" or name not in ct.output_indices_:
            continue
        where = ct.output_indices_[name]
        idx = _indices(cols, position, len(names_in))
        if where.stop - where.start == 0:
            continue
        inner = _within(step, [names_in[i] for i in idx], where.stop - where.start)
        if step == "passthrough":
            inner = [frozenset([names_in[i]]) for i in idx]
        for j, part in zip(range(where.start, where.stop), inner, strict=True):
            out[j] = frozenset().union(*(sources[position[c]] for c in part))
    return out


def _indices(cols: Any, position: dict[str, int], n: int) -> list[int]:
    if isinstance(cols, slice):
        return list(range(n))[cols]
    arr = np.atleast_1d(np.asarray(cols))
    if arr.dtype == bool:
        return list(np.flatnonzero(arr))
    if arr.dtype.kind in "iu":
        return [int(i) for i in arr]
    return [position[str(c)] for c in arr]


def encoded_sources(steps: Sequence[Any], features: Sequence[str], X: Any) -> list[str]:
    """The original column (or ``a+b`` when mixed) of each column ``transform(steps, X)`` gives.

    ``X`` is a few rows of the model's input, used to count each step's outputs.
    """
    sources = [frozenset([c]) for c in features]
    current = X
    for step in steps:
        nxt = step.transform(current)
        n_out = int(nxt.shape[1])
        inputs = ["+".join(sorted(s)) for s in sources]
        if hasattr(step, "transformers_") and hasattr(step, "output_indices_"):
            sources = _column_transformer(step, sources, n_out)
        else:
            label = {n: s for n, s in zip(inputs, sources, strict=True)}
            inner = _within(step, inputs, n_out)
            sources = [frozenset().union(*(label[c] for c in part)) for part in inner]
        current = nxt
    return ["+".join(sorted(s)) if s else "(constant)" for s in sources]


def group_matrix(sources: Sequence[str], columns: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """A 0/1 matrix (encoded columns x groups) summing encoded attributions per group, and the
    group names: the original ``columns`` in order, then any mixed groups."""
    names = list(columns)
    for s in sources:
        if s not in names:
            names.append(s)
    at = {n: i for i, n in enumerate(names)}
    m = np.zeros((len(sources), len(names)))
    m[np.arange(len(sources)), [at[s] for s in sources]] = 1.0
    return m, names


def fast_transform(steps: Sequence[Any], features: Sequence[str]) -> Any:
    """A faster ``transform(steps, X)`` for the common encoder, or ``None``: one fitted
    ``ColumnTransformer`` of ``OneHotEncoder`` (no dropped or infrequent levels),
    ``passthrough`` and ``drop``. scikit-learn spends ~3 ms validating a one-row DataFrame
    through it (the one-row ``/explain`` budget is 20 ms); level lookups in dicts take ~50 µs.
    Any value it does not know sends the rows through the real transform."""
    if len(steps) != 1 or not hasattr(steps[0], "output_indices_"):
        return None
    ct = steps[0]
    names_in = [str(n) for n in getattr(ct, "feature_names_in_", [])]
    if names_in != list(features):
        return None
    position = {n: i for i, n in enumerate(names_in)}
    plan: list[tuple[str, int, Any]] = []  # (kind, output offset, what)
    for name, step, cols in ct.transformers_:
        if step == "drop" or name not in ct.output_indices_:
            continue
        start = ct.output_indices_[name].start
        idx = _indices(cols, position, len(names_in))
        identity = type(step).__name__ == "FunctionTransformer" and step.func is None
        if step == "passthrough" or identity:  # scikit-learn 1.9 stores it as the latter
            plan += [("number", start + j, names_in[i]) for j, i in enumerate(idx)]
        elif type(step).__name__ == "OneHotEncoder" and _plain_one_hot(step):
            at = start
            for i, levels in zip(idx, step.categories_, strict=True):
                plan.append(("levels", at, (names_in[i], {v: k for k, v in enumerate(levels)})))
                at += len(levels)
        else:
            return None
    width = max(s.stop for s in ct.output_indices_.values())

    def run(X: Any) -> np.ndarray:
        try:
            return encode(X)
        except (ValueError, TypeError):
            return transform(steps, X)

    def encode(X: Any) -> np.ndarray:
        out = np.zeros((len(X), width))
        for kind, at, what in plan:
            if kind == "number":
                out[:, at] = np.asarray(X[what], dtype=np.float64)
                continue
            col, lookup = what
            for r, v in enumerate(X[col].tolist()):
                k = lookup.get(v)
                if k is None:
                    return transform(steps, X)
                out[r, at + k] = 1.0
        return out

    return run


def _plain_one_hot(enc: Any) -> bool:
    return (
        getattr(enc, "drop_idx_", None) is None
        and not getattr(enc, "_infrequent_enabled", False)
        and all(getattr(getattr(c, "dtype", None), "kind", "") == "O" for c in enc.categories_)
    )
