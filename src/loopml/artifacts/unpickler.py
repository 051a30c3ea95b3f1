"""Unpicklers that import only what the static scan allows: the second lock on pickle/joblib.

:func:`~loopml.artifacts.pickle_scan.scan_pickle` reads the stream without running it; if it
accepts, the bytes are loaded here with ``find_class`` checking every import against the same
allowlist (``pickle_allowlist()`` plus the model's ``trusted_types``, never a denied gadget),
after the same Python 2 name mapping the scanner applies. So a stream where the scanner and
the unpickler disagree about what is imported (a parser gap) still cannot import anything
outside the list. Both loaders are the pure-Python ``pickle._Unpickler`` (joblib's own
``NumpyUnpickler`` is one), whose ``find_class`` is the single import path.

One gap is joblib's own: an object-dtype array inside a joblib file is read by joblib with a
plain ``pickle.load``; those nested streams are scanned statically (the scanner walks them),
but not checked again at load.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from loopml.artifacts.allowlist import is_denied
from loopml.artifacts.pickle_machine import _import_name
from loopml.errors import UnsafeArtifactError


def _refuse(qualified: str) -> UnsafeArtifactError:
    return UnsafeArtifactError(
        f"Loading the artifact tried to import {qualified!r}, which is not on loopml's pickle "
        "allowlist, although the static scan had passed; nothing of it was run. The file is "
        "crafted to fool the scanner: delete it, and save models as 'skops' (or 'onnx').",
        untrusted_types=[qualified],
    )


class _Checked:
    """``find_class`` through the allowlist; mixed into a pure-Python unpickler."""

    allowed: frozenset[str] = frozenset()
    proto: int

    def find_class(self, module: str, name: str) -> Any:
        try:
            qualified = _import_name(module, name, self.proto)
        except Exception:
            raise _refuse(f"{module}.{name}"[:200]) from None
        if is_denied(qualified) or qualified not in self.allowed:
            raise _refuse(qualified)
        return super().find_class(module, name)  # type: ignore[misc]


class CheckedUnpickler(_Checked, pickle._Unpickler):
    """``pickle.loads`` that imports only ``allowed`` names."""

    def __init__(self, data: bytes, allowed: frozenset[str]) -> None:
        super().__init__(io.BytesIO(data))
        self.allowed = allowed


def load_pickle(data: bytes, allowed: frozenset[str]) -> Any:
    """Unpickle ``data``, importing only ``allowed`` names."""
    return CheckedUnpickler(data, allowed).load()


def load_joblib(data: bytes, allowed: frozenset[str]) -> Any:
    """``joblib.load`` of uncompressed joblib bytes, importing only ``allowed`` names."""
    from joblib.numpy_pickle import NumpyUnpickler

    class CheckedNumpyUnpickler(_Checked, NumpyUnpickler):
        pass

    unpickler = CheckedNumpyUnpickler("", io.BytesIO(data), True, mmap_mode=None)
    unpickler.allowed = allowed
    return unpickler.load()
