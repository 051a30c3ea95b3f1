"""Open Inference Protocol (KServe V2) for tabular models: metadata, infer request, answer.

Tabular inputs as DESIGN.md fixes them: one input per column, named as the column (BYTES
for categories, INT64/FP64 for numbers, BOOL for booleans, shape ``[n]``); an all-numeric
signature also accepts one ``[n, features]`` tensor. Tensors come as JSON ``data`` or, with
the binary tensor extension (:mod:`loopml.serve.wire.tensors`, what Triton's client sends by
default), as raw bytes after the JSON header; outputs are sent as binary data when the
request asks for it (``parameters.binary_data`` of an output, or ``binary_data_output``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from loopml.data.signature import Column, Signature
from loopml.errors import DataError, ValidationError
from loopml.serve.wire.coercion import quoted
from loopml.serve.wire.protocols import Request, dumps, expect, loads
from loopml.serve.wire.tensors import BinaryReader, decode, encode, split_body

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
_MAX_ID = 256  # characters of a client's request id (echoed in the answer)


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


def parse_v2(body: bytes, signature: Signature, header_length: str | None = None) -> Request:
    """``POST /v2/models/{name}/infer``: one input per column (shape ``[n]``), or one
    ``[n, features]`` tensor for an all-numeric signature. ``header_length``: the
    ``Inference-Header-Content-Length`` header of the binary tensor extension
    (:mod:`loopml.serve.wire.tensors`), when the client sent one."""
    head, binary = split_body(body, header_length)
    doc = loads(head)
    expect(isinstance(doc, dict), "The body must be a JSON object with 'inputs'.", "body")
    inputs = doc.get("inputs")
    expect(
        isinstance(inputs, list) and len(inputs) > 0, "'inputs' must be a non-empty list.", "inputs"
    )
    req_id = doc.get("id")
    expect(
        req_id is None or (isinstance(req_id, str) and len(req_id) <= _MAX_ID),
        f"'id' must be a string of at most {_MAX_ID} characters.",
        "id",
    )
    params = doc.get("parameters")
    expect(
        params is None or isinstance(params, dict), "'parameters' must be an object.", "parameters"
    )
    outputs, binary_out = _v2_requested_outputs(doc.get("outputs"), params)
    kinds = {c.name: c for c in signature.columns}
    columns: dict[str, Any] = {}
    reader = BinaryReader(binary)
    tensor: dict[str, Any] | None = None
    for i, inp in enumerate(inputs):
        field = f"inputs[{i}]"
        expect(isinstance(inp, dict), f"'{field}' must be an object.", field)
        name, shape, dtype = inp.get("name"), inp.get("shape"), inp.get("datatype")
        expect(isinstance(name, str), f"'{field}.name' must be a string.", f"{field}.name")
        expect(
            isinstance(shape, list)
            and 0 < len(shape) <= 4
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape),
            f"'{field}.shape' must be a list of non-negative integers.",
            f"{field}.shape",
        )
        expect(
            isinstance(dtype, str) and (dtype in _V2_NUMBER or dtype == "BYTES"),
            f"'{field}.datatype' must be a V2 datatype such as FP64 or BYTES.",
            f"{field}.datatype",
        )
        size = math.prod(shape)
        data = _v2_data(inp, field, dtype, size, reader)
        if name not in kinds and len(inputs) == 1 and len(shape) == 2:
            tensor = _v2_tensor(data, shape, signature, field)
            continue
        if (len(shape) == 2 and shape[1] != 1) or len(shape) > 2:
            raise DataError(
                f"'{field}.shape' must be [n] (one input per column).", field=f"{field}.shape"
            )
        col = kinds.get(name)
        if col is not None and (col.kind == "category") != (dtype == "BYTES"):
            raise ValidationError(
                f"Input {quoted(name)} has datatype {dtype}, but its column needs "
                f"{v2_datatype(col)}.",
                field=name[:64],
            )
        if name in columns:
            raise DataError(f"Input {quoted(name)} is sent twice.", field=name[:64])
        columns[name] = data
    reader.finish()
    return Request(tensor if tensor is not None else columns, params, req_id, outputs, binary_out)


def _v2_data(inp: dict[str, Any], field: str, dtype: str, size: int, reader: BinaryReader) -> Any:
    """An input's values, flat: from its JSON ``data`` or from the binary part."""
    iparams = inp.get("parameters")
    expect(
        iparams is None or isinstance(iparams, dict),
        f"'{field}.parameters' must be an object.",
        f"{field}.parameters",
    )
    bsize = iparams.get("binary_data_size") if iparams else None
    if bsize is not None:
        expect(
            inp.get("data") is None,
            f"'{field}' has both 'data' and binary_data_size; send one of them.",
            f"{field}.data",
        )
        return decode(reader.take(bsize, field), dtype, size, field)
    data: list[Any] = inp.get("data")  # type: ignore[assignment]
    expect(isinstance(data, list), f"'{field}.data' must be a list.", f"{field}.data")
    for _ in range(4):  # nested lists in row-major order, as deep as the shape allows
        nested = [isinstance(v, list) for v in data]
        if not any(nested):
            break
        if not all(nested):
            raise DataError(
                f"'{field}.data' mixes lists and values; send a flat list, or lists of "
                "equal length.",
                field=f"{field}.data",
            )
        data = list(chain.from_iterable(data))
    if len(data) != size:
        raise DataError(
            f"'{field}.data' has {len(data)} values but its shape needs {size}.",
            field=f"{field}.data",
        )
    return data


def _v2_requested_outputs(
    outputs: Any, params: dict[str, Any] | None
) -> tuple[tuple[str, ...] | None, frozenset[str]]:
    """The outputs asked for (``None``: all) and those to send as binary data: an output's
    ``parameters.binary_data``, else the request's ``parameters.binary_data_output``."""
    default = bool(params.get("binary_data_output", False)) if params else False
    if outputs is None:
        return None, frozenset(_V2_OUTPUTS) if default else frozenset()
    expect(
        isinstance(outputs, list) and all(isinstance(o, dict) for o in outputs),
        "'outputs' must be a list of objects with a 'name'.",
        "outputs",
    )
    names: list[str] = []
    binary: set[str] = set()
    for i, o in enumerate(outputs):
        name, oparams = o.get("name"), o.get("parameters")
        if name not in _V2_OUTPUTS:
            raise DataError(
                f"Unknown output requested; this model has {', '.join(_V2_OUTPUTS)}.",
                field=f"outputs[{i}].name",
            )
        expect(
            oparams is None or isinstance(oparams, dict),
            f"'outputs[{i}].parameters' must be an object.",
            f"outputs[{i}].parameters",
        )
        if (oparams or {}).get("binary_data", default):
            binary.add(name)
        names.append(name)
    return tuple(names), frozenset(binary)


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
    binary: frozenset[str] = frozenset(),
) -> tuple[bytes, int | None]:
    """The V2 infer answer with ``predict`` (and ``predict_proba`` when available), and the
    length of its JSON header when some outputs are sent as binary data (else ``None``)."""
    wanted = outputs or _V2_OUTPUTS
    tensors: list[tuple[str, str, list[int], np.ndarray]] = []
    if "predict" in wanted:
        pred = np.asarray(predictions)
        tensors.append(("predict", _v2_array_type(pred), [len(pred)], pred))
    if probabilities is not None and "predict_proba" in wanted:
        proba = np.ascontiguousarray(probabilities, dtype=np.float64)
        tensors.append(("predict_proba", "FP64", list(proba.shape), proba.ravel()))
    out: list[dict[str, Any]] = []
    raw: list[bytes] = []
    for name, dtype, shape, values in tensors:
        if name in binary:
            data = encode(values, dtype)
            raw.append(data)
            params = {"binary_data_size": len(data)}
            out.append({"name": name, "datatype": dtype, "shape": shape, "parameters": params})
        else:
            out.append({"name": name, "datatype": dtype, "shape": shape, "data": values})
    head = dumps(
        {
            "model_name": model_name,
            "model_version": str(model_version),
            "id": request_id,
            "outputs": out,
        }
    )
    if not raw:
        return head, None
    return head + b"".join(raw), len(head)
