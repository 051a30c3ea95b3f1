"""How a frame (pandas DataFrame, Arrow Table or RecordBatch) becomes typed columns for the
profiles: each column's kind (numeric or categorical), its dtype's name and its values, with no
copy of the whole frame; and the values a row sample keeps (``reservoir.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.errors import DataError

Kind = Literal["numeric", "categorical"]
Frame: TypeAlias = pd.DataFrame | pa.Table | pa.RecordBatch


def _arrow_kind(t: pa.DataType) -> Kind:
    if (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_temporal(t)
        or pa.types.is_null(t)
    ):
        return "numeric"
    return "categorical"


def numeric_array(arr: pa.Array) -> np.ndarray:
    """float64 numpy view of an Arrow column; nulls become NaN, times become epoch seconds."""
    t = arr.type
    if (
        pa.types.is_timestamp(t)
        or pa.types.is_date(t)
        or pa.types.is_time(t)
        or pa.types.is_duration(t)
    ):
        unit_s = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
        if pa.types.is_date32(t):
            arr, scale = arr.cast(pa.int32()), 86400.0
        elif pa.types.is_date64(t):
            arr, scale = arr.cast(pa.int64()), 1e-3
        else:
            scale = unit_s[t.unit]
            arr = arr.cast(pa.int64())
        return numeric_array(arr) * scale
    if not pa.types.is_float64(t):
        arr = arr.cast(pa.float64())
    if arr.null_count:
        arr = pc.fill_null(arr, np.nan)
    return arr.to_numpy(zero_copy_only=False)


def _pandas_columns(frame: pd.DataFrame) -> Iterable[tuple[str, Kind, str, Any]]:
    for name in frame.columns:
        s = frame[name]
        dt = s.dtype
        if pd.api.types.is_bool_dtype(dt):
            yield str(name), "categorical", "bool", pa.array(s, from_pandas=True)
        elif pd.api.types.is_numeric_dtype(dt):
            yield str(name), "numeric", str(dt), s.to_numpy(dtype=np.float64, na_value=np.nan)
        elif pd.api.types.is_datetime64_any_dtype(dt) or pd.api.types.is_timedelta64_dtype(dt):
            yield str(name), "numeric", str(dt), numeric_array(pa.array(s, from_pandas=True))
        else:
            try:
                arr = pa.array(s, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                arr = pa.array(
                    s.astype("string"), from_pandas=True
                )  # mixed objects: compare as text
            yield str(name), _arrow_kind(arr.type), str(dt), arr


def _arrow_columns(frame: pa.Table | pa.RecordBatch) -> Iterable[tuple[str, Kind, str, Any]]:
    for name, col in zip(frame.schema.names, frame.columns, strict=True):
        t = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
        yield (
            name,
            _arrow_kind(t) if not pa.types.is_dictionary(col.type) else "categorical",
            str(t),
            col,
        )


def columns_of(frame: Frame) -> Iterable[tuple[str, Kind, str, Any]]:
    if isinstance(frame, pd.DataFrame):
        if not frame.columns.is_unique:
            raise DataError(
                "cannot profile a frame with duplicate column names: "
                f"{sorted(set(frame.columns[frame.columns.duplicated()]))}; rename them",
                field="frame",
            )
        return _pandas_columns(frame)
    if isinstance(frame, pa.Table | pa.RecordBatch):
        return _arrow_columns(frame)
    raise DataError(
        f"cannot profile a {type(frame).__name__}; pass a pandas DataFrame or a pyarrow "
        "Table or RecordBatch",
        field="frame",
    )


def sample_values(kind: str, data: Any, pos: np.ndarray) -> pa.Array:
    """The values at ``pos`` of a column, as the row sample stores them."""
    if isinstance(data, np.ndarray):
        taken: Any = pa.array(data[pos], from_pandas=True)
    else:
        taken = data.take(pa.array(pos, pa.int64()))
        if isinstance(taken, pa.ChunkedArray):
            taken = taken.combine_chunks()
    if pa.types.is_dictionary(taken.type):
        taken = taken.dictionary_decode()
    if kind == "numeric":
        return pa.array(numeric_array(taken), pa.float64())
    return taken if pa.types.is_string(taken.type) else taken.cast(pa.string())
