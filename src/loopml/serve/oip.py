"""Open Inference Protocol (KServe V2) for tabular models: metadata, infer request, answer.

Tabular inputs as DESIGN.md fixes them: one input per column, named as the column (BYTES
for categories, INT64/FP64 for numbers, BOOL for booleans, shape ``[n]``); an all-numeric
signature also accepts one ``[n, features]`` tensor. JSON only (no binary-data extension):
Triton's client works with ``binary_data=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from loopml.data.signature import Column, Signature
from loopml.errors import DataError, ValidationError
from loopml.serve.protocols import Request, dumps, expect, loads

_V2_NUMBER = {
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "FP16",
    "FP32",
    "FP64",
    "BOOL",
}
_V2_OUTPUTS = ("predict", "predict_proba")


def v2_datatype(column: Column) -> str:
    """The V2 datatype of a signature column."""
    if column.kind == "category":
        return "BYTES"
    if column.kind == "bool":
        return "BOOL"
    return "INT64" if np.dtype(column.dtype).kind in "iu" else "FP64"


def _v2_array_type(arr: np.ndarray) -> str:
    kind = arr.dtype.kind
    return {"i": "INT64", "u": "UINT64", "f": "FP64", "b": "BOOL"}.get(kind, "BYTES")


def v2_metadata(
    name: str, versions: Sequence[int], signature: Signature, platform: str = "sklearn"
) -> dict[str, Any]:
    """``GET /v2/models/{name}``: one input per column, shape ``[-1]``."""
    inputs = [
        {"name": c.name, "datatype": v2_datatype(c), "shape": [-1]} for c in signature.columns
    ]
    if signature.task == "regression":
        outputs = [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    else:
        classes = signature.classes or ()
        numeric = bool(classes) and all(isinstance(c, int) for c in classes)
        outputs = [
            {"name": "predict", "datatype": "INT64" if numeric else "BYTES", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes) or -1]},
        ]
    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": platform,
        "inputs": inputs,
        "outputs": outputs,
    }


def parse_v2(body: bytes, signature: Signature) -> Request:
    """``POST /v2/models/{name}/infer``: one input per column (shape ``[n]``), or one
    ``[n, features]`` tensor for an all-numeric signature."""
    doc = loads(body)
    expect(isinstance(doc, dict), "The body must be a JSON object with 'inputs'.", "body")
    inputs = doc.get("inputs")
    expect(
        isinstance(inputs, list) and len(inputs) > 0, "'inputs' must be a non-empty list.", "inputs"
    )
    req_id = doc.get("id")
    expect(req_id is None or isinstance(req_id, str), "'id' must be a string.", "id")
    params = doc.get("parameters")
    expect(
        params is None or isinstance(params, dict), "'parameters' must be an object.", "parameters"
    )
    outputs = _v2_requested_outputs(doc.get("outputs"))
    kinds = {c.name: c for c in signature.columns}
    columns: dict[str, Any] = {}
    for i, inp in enumerate(inputs):
        field = f"inputs[{i}]"
        expect(isinstance(inp, dict), f"'{field}' must be an object.", field)
        name, shape, dtype, data = (
            inp.get("name"),
            inp.get("shape"),
            inp.get("datatype"),
            inp.get("data"),
        )
        expect(isinstance(name, str), f"'{field}.name' must be a string.", f"{field}.name")
        expect(
            isinstance(shape, list)
            and len(shape) > 0
            and all(isinstance(d, int) and d >= 0 for d in shape),
            f"'{field}.shape' must be a list of non-negative integers.",
            f"{field}.shape",
        )
        expect(
            dtype in _V2_NUMBER or dtype == "BYTES",
            f"'{field}.datatype' must be a V2 datatype such as FP64 or BYTES.",
            f"{field}.datatype",
        )
        expect(isinstance(data, list), f"'{field}.data' must be a list.", f"{field}.data")
        if data and isinstance(data[0], list):
            data = list(chain.from_iterable(data))
        size = int(np.prod(shape))
        if len(data) != size:
            raise DataError(
                f"'{field}.data' has {len(data)} values but its shape {shape} needs {size}.",
                field=f"{field}.data",
            )
        if name not in kinds and len(inputs) == 1 and len(shape) == 2:
            return Request(_v2_tensor(data, shape, signature, field), params, req_id, outputs)
        if (len(shape) == 2 and shape[1] != 1) or len(shape) > 2:
            raise DataError(
                f"'{field}.shape' must be [n] (one input per column).", field=f"{field}.shape"
            )
        col = kinds.get(name)
        if col is not None and (col.kind == "category") != (dtype == "BYTES"):
            raise ValidationError(
                f"Input {name!r} has datatype {dtype}, but its column needs {v2_datatype(col)}.",
                field=name,
            )
        if name in columns:
            raise DataError(f"Input {name!r} is sent twice.", field=name)
        columns[name] = data
    return Request(columns, params, req_id, outputs)


def _v2_requested_outputs(outputs: Any) -> tuple[str, ...] | None:
    if outputs is None:
        return None
    expect(
        isinstance(outputs, list) and all(isinstance(o, dict) for o in outputs),
        "'outputs' must be a list of objects with a 'name'.",
        "outputs",
    )
    names = tuple(o.get("name") for o in outputs)
    for n in names:
        if n not in _V2_OUTPUTS:
            raise DataError(
                f"Unknown output requested; this model has {', '.join(_V2_OUTPUTS)}.",
                field="outputs",
            )
    return names


def _v2_tensor(
    data: list[Any], shape: list[int], signature: Signature, field: str
) -> dict[str, Any]:
    names = signature.names
    if not all(c.kind == "number" for c in signature.columns):
        raise ValidationError(
            "A single [n, features] tensor is accepted only when every column is a number; "
            "send one input per column, named as the column.",
            field=f"{field}.name",
        )
    if shape[1] != len(names):
        raise ValidationError(
            f"The tensor has {shape[1]} features but the model takes {len(names)}.",
            field=f"{field}.shape",
        )
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError):
        arr = np.empty(0, dtype=object)
    if arr.dtype.kind not in "fiub":
        raise ValidationError("The tensor must hold numbers only.", field=f"{field}.data")
    block = arr.astype(np.float64, copy=False).reshape(shape[0], shape[1])
    return {name: block[:, j] for j, name in enumerate(names)}


def encode_v2(
    model_name: str,
    model_version: int | str,
    request_id: str,
    predictions: np.ndarray,
    probabilities: np.ndarray | None,
    outputs: Sequence[str] | None = None,
) -> bytes:
    """The V2 infer answer with ``predict`` (and ``predict_proba`` when available)."""
    wanted = outputs or _V2_OUTPUTS
    out = []
    if "predict" in wanted:
        pred = np.asarray(predictions)
        out.append(
            {
                "name": "predict",
                "datatype": _v2_array_type(pred),
                "shape": [len(pred)],
                "data": pred,
            }
        )
    if probabilities is not None and "predict_proba" in wanted:
        proba = np.ascontiguousarray(probabilities, dtype=np.float64)
        out.append(
            {
                "name": "predict_proba",
                "datatype": "FP64",
                "shape": list(proba.shape),
                "data": proba.ravel(),
            }
        )
    return dumps(
        {
            "model_name": model_name,
            "model_version": str(model_version),
            "id": request_id,
            "outputs": out,
        }
    )
