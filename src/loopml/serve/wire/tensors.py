"""The KServe V2 binary tensor extension: raw tensor bytes after the JSON header.

A request (or answer) in this form is a JSON header of ``Inference-Header-Content-Length``
bytes followed by the tensors' raw bytes, in the order of the inputs (outputs) whose
``parameters.binary_data_size`` says how many bytes each takes. Numbers are little-endian in
row-major order, BOOL one byte each, BYTES each element as a 4-byte little-endian length and
its bytes (https://github.com/triton-inference-server/server/blob/main/docs/protocol/
extension_binary_data.md). Written by hand: the only implementations are inside Triton's
server and client, and the format is these few lines of NumPy.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from loopml.errors import DataError

NUMPY = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}

HEADER = "inference-header-content-length"


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview | None]:
    """The JSON header and the binary part (``None`` when the body is JSON alone)."""
    if header_length is None:
        return body, None
    text = header_length.strip()
    if not text.isdigit() or int(text) > len(body):
        raise DataError(
            "The Inference-Header-Content-Length header must be the length in bytes of the "
            f"JSON header at the start of the body (at most {len(body)}).",
            field="inference-header-content-length",
        )
    n = int(text)
    return body[:n], memoryview(body)[n:]


class BinaryReader:
    """Hands out each binary input's bytes in order; :meth:`finish` checks none are left."""

    def __init__(self, data: memoryview | None) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: Any, field: str) -> memoryview:
        if self.data is None:
            raise DataError(
                f"'{field}.parameters.binary_data_size' is set, but the request has no binary "
                "part: send the Inference-Header-Content-Length header with the JSON length.",
                field=f"{field}.parameters.binary_data_size",
            )
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise DataError(
                f"'{field}.parameters.binary_data_size' must be a non-negative integer.",
                field=f"{field}.parameters.binary_data_size",
            )
        end = self.offset + size
        if end > len(self.data):
            raise DataError(
                f"'{field}' needs {size} bytes of binary data, but only "
                f"{len(self.data) - self.offset} are left in the body.",
                field=f"{field}.parameters.binary_data_size",
            )
        out = self.data[self.offset : end]
        self.offset = end
        return out

    def finish(self) -> None:
        if self.data is not None and self.offset != len(self.data):
            raise DataError(
                f"The body has {len(self.data) - self.offset} bytes of binary data that no "
                "input claims (binary_data_size).",
                field="body",
            )


def decode(raw: memoryview, datatype: str, count: int, field: str) -> Any:
    """``count`` elements of ``datatype`` from ``raw``: an array, or a list of str for BYTES."""
    if datatype == "BYTES":
        return _decode_bytes(raw, count, field)
    dtype = NUMPY[datatype]
    if len(raw) != count * dtype.itemsize:
        raise DataError(
            f"'{field}' has {len(raw)} bytes of binary data, but {count} {datatype} values "
            f"take {count * dtype.itemsize}.",
            field=f"{field}.parameters.binary_data_size",
        )
    if datatype == "BOOL":
        return np.frombuffer(raw, dtype=np.uint8).astype(bool)
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)


def _decode_bytes(raw: memoryview, count: int, field: str) -> list[str]:
    out: list[str] = []
    buf = bytes(raw)
    offset, size = 0, len(buf)
    while offset < size:
        if offset + 4 > size:
            break
        (n,) = struct.unpack_from("<I", buf, offset)
        offset += 4
        if offset + n > size:
            break
        try:
            out.append(buf[offset : offset + n].decode("utf-8"))
        except UnicodeDecodeError:
            raise DataError(
                f"Element {len(out)} of '{field}' is not UTF-8 text.", field=f"{field}.data"
            ) from None
        offset += n
    else:
        if len(out) == count:
            return out
    raise DataError(
        f"'{field}' must hold {count} BYTES elements, each a 4-byte little-endian length and "
        "its bytes; its binary data does not.",
        field=f"{field}.parameters.binary_data_size",
    )


def encode(values: np.ndarray, datatype: str) -> bytes:
    """``values`` as raw bytes of ``datatype`` (the inverse of :func:`decode`)."""
    if datatype == "BYTES":
        parts = []
        for v in values.ravel().tolist():
            b = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts.append(struct.pack("<I", len(b)))
            parts.append(b)
        return b"".join(parts)
    if datatype == "BOOL":
        return np.ascontiguousarray(values, dtype=np.uint8).tobytes()
    return np.ascontiguousarray(values, dtype=NUMPY[datatype]).tobytes()
