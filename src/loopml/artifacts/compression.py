"""Undo joblib's ``compress=`` so the plain stream can be scanned, then loaded as scanned.

joblib compresses the whole stream (pickle opcodes and inline array bytes alike) with one
codec, so decompressing with the standard library gives exactly the uncompressed joblib
format. Magic numbers are joblib's (``joblib/compressor.py``).
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import Any

from loopml.artifacts.pickle_scan import FIX
from loopml.errors import UnsafeArtifactError

MAX_DECOMPRESSED = 4 << 30

_COMPRESSED = {  # joblib's compressor magic numbers (joblib/compressor.py)
    b"\x78": "zlib",
    b"\x1f\x8b": "gzip",
    b"BZ": "bz2",
    b"\x5d\x00\x00": "lzma",
    b"\xfd\x37\x7a\x58\x5a": "xz",
    b"\x04\x22\x4d\x18": "lz4",
    b"ZF": "the pre-0.10 joblib format",
}


def decompress_joblib(data: bytes, max_size: int = MAX_DECOMPRESSED) -> bytes:
    """Undo joblib's ``compress=`` (zlib, gzip, bz2, lzma, xz); plain streams pass through.

    lz4 and joblib's pre-0.10 format are refused. ``max_size`` bounds the output so a
    decompression bomb fails instead of filling memory.
    """
    kind = next((k for magic, k in _COMPRESSED.items() if data.startswith(magic)), None)
    if kind is None:
        return data
    if kind in ("lz4", "the pre-0.10 joblib format"):
        raise UnsafeArtifactError(
            f"This joblib file uses {kind}, which loopml cannot scan safely, so it was refused. "
            f"Re-save it with joblib.dump(model, path) (compress=0 or zlib) or, better: {FIX}",
            compression=kind,
        )
    try:
        d: Any
        if kind == "zlib":
            d = zlib.decompressobj()
        elif kind == "gzip":
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif kind == "bz2":
            d = bz2.BZ2Decompressor()
        else:
            d = lzma.LZMADecompressor()
        out = d.decompress(data, max_size + 1)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        raise UnsafeArtifactError(
            f"This {kind}-compressed joblib file could not be decompressed ({exc}), so it was "
            f"refused. The file is damaged or not a joblib file. {FIX}",
            compression=kind,
        ) from exc
    if len(out) > max_size:
        raise UnsafeArtifactError(
            f"This {kind}-compressed joblib file expands past {max_size} bytes, so it was "
            f"refused as a possible decompression bomb. {FIX}",
            compression=kind,
        )
    return out
