"""Train/test split: by time when the data has a time column with more than one value
(the test set is the latest rows, or ``test_from`` onwards), else stratified by the label
for classification, else random. Deterministic for a given seed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from loopml.config import DataConfig
from loopml.data.dates import as_time_value, parse_dates
from loopml.errors import ConfigError, DataError


def time_column(frame: pd.DataFrame, name: str) -> pd.Series:
    """``data.time`` as dates (date-like text is parsed) or numbers; other text is refused."""
    t = frame[name]
    if pd.api.types.is_datetime64_any_dtype(t) or (
        pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t)
    ):
        return t
    parsed = parse_dates(t)
    if parsed is None:
        example = t.dropna().iloc[0] if t.notna().any() else None
        raise DataError(
            f"data.time {name!r} holds {t.dtype} values such as {example!r}, which are neither "
            "dates (e.g. 2014-07-01 or 2014-07-01 13:45) nor numbers, so rows cannot be ordered "
            "in time. Convert it, or set data.split to 'stratified' or 'random'.",
            field="data.time",
        )
    return parsed


def split(
    frame: pd.DataFrame, data: DataConfig, task: str, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """Row positions (train, test) and a sentence saying how the split was made."""
    n = len(frame)
    how = data.split
    if how == "auto":
        has_time = data.time is not None and frame[data.time].nunique() > 1
        how = "time" if has_time else ("stratified" if task == "classification" else "random")
    if how == "time":
        if data.time is None:
            raise DataError(
                "data.split is 'time' but data.time is not set; name the time column.",
                field="data.time",
            )
        t = time_column(frame, data.time)
        if data.test_from is not None:
            try:
                cut = as_time_value(data.test_from, t, "data.test_from")
            except ValueError as e:
                raise ConfigError(
                    f"data.test_from must be {e} (data.time is {data.time!r}).",
                    field="data.test_from",
                ) from None
        else:
            cut = t.quantile(1 - data.test_size)
        test_mask = (t >= cut).to_numpy()
        if test_mask.all() or not test_mask.any():
            raise DataError(
                f"Splitting by {data.time} at {cut!r} leaves an empty train or test set. "
                f"Set data.test_from to a value inside the data's range.",
                field="data.test_from",
            )
        idx = np.arange(n)
        shown = cut.isoformat() if isinstance(cut, pd.Timestamp) else cut
        return idx[~test_mask], idx[test_mask], f"by time: {data.time} >= {shown} is the test set"
    from sklearn.model_selection import train_test_split

    y = frame[data.target]
    stratify = y if how == "stratified" and y.value_counts().min() >= 2 else None
    tr, te = train_test_split(
        np.arange(n), test_size=data.test_size, random_state=seed, stratify=stratify
    )
    return (
        np.sort(tr),
        np.sort(te),
        f"{'stratified' if stratify is not None else 'random'} {1 - data.test_size:.0%}/{data.test_size:.0%}",
    )
