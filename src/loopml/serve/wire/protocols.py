"""Wire formats: loopml JSON, the MLflow scoring protocol and the Open Inference Protocol.

Each ``parse_*`` turns a request body into a :class:`Request` holding columns of values
(name -> list or array) for :class:`~loopml.serve.wire.validation.Validator`; each ``encode_*``
turns predictions into response bytes. Every format is converted to columns in one pass,
without pandas: MLflow's own ``dataframe_split`` path costs ~14 ms/row because it casts
through pandas twice (docs/design/measurements.md, "Serving"); the Open Inference Protocol is in
:mod:`loopml.serve.wire.oip`. Parse errors raise
:class:`~loopml.errors.DataError` (or ``ValidationError``) naming the field and never echo
the payload (MLflow reflects whole bodies back, same page).

JSON goes through orjson (a required dependency: about 3-10x faster than the standard
library on these bodies, and it serialises NumPy arrays without ``tolist``).
"""

from __future__ import annotations

import io
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from loopml.data.signature import Signature
from loopml.errors import (
    BadRequestError,
    DataError,
    LoopmlError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from loopml.logs.logtables import dumps as dumps  # one JSON encoder for answers and the log
from loopml.serve.http.refusals import tag

_loads = orjson.loads
_DecodeError: type[Exception] = orjson.JSONDecodeError


@dataclass(slots=True)
class Request:
    """A parsed request: columns of values, plus what the protocol adds around them."""

    columns: dict[str, Any]
    params: dict[str, Any] | None = None
    id: str | None = None
    outputs: tuple[str, ...] | None = None
    binary_outputs: frozenset[str] = frozenset()  # V2 outputs to send as binary data


def loads(body: bytes | str) -> Any:
    """Parse a JSON body; a :class:`DataError` (400) without the body if it is not JSON."""
    if not body:
        raise BadRequestError("The request body is empty. Send a JSON object.", field="body")
    try:
        return _loads(body)
    except _DecodeError as exc:
        line, col = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        where = f" (line {line}, column {col})" if line is not None else ""
        raise BadRequestError(f"The request body is not valid JSON{where}.", field="body") from None


def error_body(exc: LoopmlError) -> bytes:
    """The one JSON error shape: ``{"error": ..., "field": ..., "status": ...}``."""
    return dumps(exc.to_dict())


# -- shared converters ------------------------------------------------------------------


def expect(cond: bool, message: str, field: str) -> None:
    """Raise a :class:`DataError` naming ``field`` unless ``cond``."""
    if not cond:
        raise tag(DataError(message, field=field), "malformed")


def rows_to_columns(rows: Any, field: str) -> dict[str, Any]:
    """``[{"a": 1, "b": 2}, ...]`` -> ``{"a": [1, ...], "b": [2, ...]}``.

    Row-oriented JSON has to be transposed; ``itemgetter`` + ``zip`` do it in C. The Python
    loop over rows runs only to find the first bad row once something failed.
    """
    expect(
        isinstance(rows, list) and len(rows) > 0,
        f"'{field}' must be a non-empty list of objects, one per row.",
        field,
    )
    first = rows[0]
    expect(
        isinstance(first, dict),
        f"'{field}[0]' must be an object mapping column to value.",
        f"{field}[0]",
    )
    if len(rows) == 1:
        return {k: [v] for k, v in first.items()}
    keys = list(first)
    width = len(keys)
    try:
        if set(map(len, rows)) != {width}:
            raise TypeError
        got = list(map(operator.itemgetter(*keys), rows)) if width else []
    except (KeyError, TypeError):
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise DataError(
                    f"'{field}[{i}]' must be an object mapping column to value.",
                    field=f"{field}[{i}]",
                ) from None
            if row.keys() != first.keys():
                raise ValidationError(
                    f"Row {i} of '{field}' has different columns from row 0. Send the same "
                    "columns in every row.",
                    field=f"{field}[{i}]",
                    row=i,
                ) from None
        raise  # pragma: no cover - internal invariant
    if width == 1:
        return {keys[0]: got}
    return dict(zip(keys, map(list, zip(*got, strict=True)), strict=True))


def split_to_columns(columns: Any, data: Any, field: str) -> dict[str, Any]:
    """``columns=["a","b"], data=[[1, 2], ...]`` -> ``{"a": [1, ...], "b": [2, ...]}``."""
    expect(
        isinstance(columns, list) and all(isinstance(c, str) for c in columns),
        f"'{field}.columns' must be a list of column names.",
        f"{field}.columns",
    )
    expect(
        len(set(columns)) == len(columns),
        f"'{field}.columns' names a column twice.",
        f"{field}.columns",
    )
    expect(
        isinstance(data, list) and len(data) > 0,
        f"'{field}.data' must be a non-empty list of rows.",
        f"{field}.data",
    )
    width = len(columns)
    if set(map(type, data)) != {list} or set(map(len, data)) != {width}:
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != width:
                raise ValidationError(
                    f"Row {i} of '{field}.data' must be a list of {width} values, one per column.",
                    field=f"{field}.data[{i}]",
                    row=i,
                )
    return dict(zip(columns, map(list, zip(*data, strict=True)), strict=True))


def positional_columns(rows: Any, names: Sequence[str], field: str) -> dict[str, Any]:
    """Rows of values in signature order (a ``[n, features]`` tensor) -> columns."""
    if isinstance(rows, list) and rows and not isinstance(rows[0], list):
        rows = [rows] if len(names) > 1 else [[v] for v in rows]
    return split_to_columns(list(names), rows, field)


# -- loopml JSON ------------------------------------------------------------------------


def parse_loopml(body: bytes) -> Request:
    """``{"rows": [{...}]}`` or ``{"columns": [...], "data": [[...]]}``."""
    doc = loads(body)
    expect(
        isinstance(doc, dict),
        "The body must be a JSON object with 'rows', or with 'columns' and 'data'.",
        "body",
    )
    if "rows" in doc:
        expect(
            doc.keys() == {"rows"}, "Send either 'rows' or 'columns' + 'data', not both.", "body"
        )
        return Request(rows_to_columns(doc["rows"], "rows"))
    if "data" in doc:
        expect(
            doc.keys() == {"columns", "data"},
            "'data' needs 'columns' beside it (and nothing else).",
            "columns",
        )
        return Request(split_to_columns(doc["columns"], doc["data"], "body"))
    raise DataError(
        "The body must have 'rows' (a list of objects) or 'columns' and 'data'.", field="body"
    )


def encode_loopml(
    request_ids: Sequence[str],
    predictions: np.ndarray | Sequence[Any],
    probabilities: np.ndarray | None,
    model_version: int,
    classes: Sequence[Any] | None = None,
) -> bytes:
    """The loopml JSON answer; ``classes`` names the columns of ``probabilities``."""
    out: dict[str, Any] = {"request_ids": request_ids, "predictions": predictions}
    if probabilities is not None:
        out["probabilities"] = probabilities
        if classes is not None:
            out["classes"] = list(classes)
    out["model_version"] = model_version
    return dumps(out)


# -- MLflow scoring protocol ------------------------------------------------------------

_MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def parse_mlflow(body: bytes, content_type: str | None, signature: Signature) -> Request:
    """A body for MLflow's ``/invocations`` (JSON with exactly one input key, or CSV)."""
    mime, _, rest = (content_type or "").partition(";")
    mime = mime.strip().lower()
    charset = rest.strip().lower()
    if charset and charset.replace(" ", "") not in ("charset=utf-8", "charset=utf8"):
        raise UnsupportedMediaTypeError("Only UTF-8 bodies are accepted.", field="content-type")
    if mime == "text/csv":
        return Request(parse_csv(body, signature))
    if mime != "application/json":
        raise UnsupportedMediaTypeError(
            "/invocations reads 'application/json' or 'text/csv'. Set the Content-Type header.",
            field="content-type",
        )
    doc = loads(body)
    expect(
        isinstance(doc, dict),
        f"The body must be a JSON object with one of {', '.join(_MLFLOW_KEYS)}.",
        "body",
    )
    keys = [k for k in doc if k != "params"]
    if len(keys) != 1 or keys[0] not in _MLFLOW_KEYS:
        raise DataError(
            f"The body must have exactly one of {', '.join(_MLFLOW_KEYS)} "
            "(and optionally 'params').",
            field="body",
        )
    params = doc.get("params")
    expect(params is None or isinstance(params, dict), "'params' must be an object.", "params")
    key = keys[0]
    value = doc[key]
    names = signature.names
    if key == "dataframe_split":
        expect(
            isinstance(value, dict),
            "'dataframe_split' must be an object with 'columns' and 'data'.",
            key,
        )
        if "columns" in value:
            cols = split_to_columns(value["columns"], value.get("data"), key)
        else:
            cols = positional_columns(value.get("data"), names, key + ".data")
    elif key == "dataframe_records":
        cols = rows_to_columns(value, key)
    elif isinstance(value, dict):  # inputs / instances as named columns
        cols = {k: (v if isinstance(v, list) else [v]) for k, v in value.items()}
    else:
        expect(
            isinstance(value, list) and len(value) > 0,
            f"'{key}' must be a non-empty list or an object of columns.",
            key,
        )
        if isinstance(value[0], dict):
            cols = rows_to_columns(value, key)
        else:
            cols = positional_columns(value, names, key)
    return Request(cols, params=params)


def parse_csv(body: bytes, signature: Signature) -> dict[str, Any]:
    """CSV with a header row -> columns (category columns kept as text)."""
    import pandas as pd

    text_cols = {c.name: object for c in signature.columns if c.kind == "category"}
    try:
        frame = pd.read_csv(io.BytesIO(body), dtype=text_cols, keep_default_na=True)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        # pandas' messages can quote the data; keep them out of the answer
        raise DataError(
            "The body could not be read as CSV with a header row.", field="body"
        ) from None
    out = {str(c): frame[c].to_numpy() for c in frame.columns}
    for name, values in out.items():
        # pandas reads 'inf' as a number; JSON has no infinity (1e999 is refused there too)
        if values.dtype.kind == "f" and np.isinf(values).any():
            row = int(np.isinf(values).argmax())
            raise DataError(
                f"Column {name[:64]!r}, row {row}: numbers must be finite; 'inf' is not a "
                "value a model can be given. Send a finite number or leave the cell empty.",
                field=name[:64],
            )
    return out


def encode_mlflow(predictions: np.ndarray | Sequence[Any]) -> bytes:
    """MLflow's answer: ``{"predictions": [...]}``."""
    return dumps({"predictions": predictions})
