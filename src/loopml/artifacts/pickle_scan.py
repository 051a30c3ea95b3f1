"""Static scan of pickle and joblib streams: which globals would loading import?

Written by hand because no well-kept library does this as an *acceptance* test: modelscan is
a deny-list that misses ``timeit``/``importlib`` payloads and gives up on joblib files, and
fickling flags every scikit-learn pickle (docs/design/measurements.md, "Model-artifact scanning").

The scanner never unpickles. It walks the opcodes beside a small symbolic stack machine
(``pickle_machine.py``) in which nothing is called, and checks every import the stream would
make against the allowlist in ``allowlist.py``.

It is fail-closed: an unknown or malformed opcode, a truncated stream, persistent ids,
extension codes, out-of-band buffers, a ``REDUCE``/``NEWOBJ`` on anything but an imported
global, or a ``BUILD`` on anything but an instance is refused.

joblib files are not pure pickles: array bytes (or nested pickles) follow each
``NumpyArrayWrapper``. In ``joblib`` mode the machine skips them exactly as
``joblib.NumpyUnpickler`` reads them. Compressed joblib files are decompressed first
(``compression.decompress_joblib``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field

from loopml.artifacts.allowlist import is_denied, pickle_allowlist
from loopml.artifacts.pickle_machine import _Machine
from loopml.artifacts.pickle_stream import _ScanError
from loopml.errors import UnsafeArtifactError

FIX = "Save the model with format 'skops' (or 'onnx') instead of pickle/joblib."


@dataclass
class ScanReport:
    """What a stream would import, and how many joblib arrays it holds."""

    globals: list[str] = field(default_factory=list)
    protocol: int = 0
    arrays: int = 0
    refused: list[str] = field(default_factory=list)


def scan_pickle(
    data: bytes, *, joblib: bool = False, trusted_types: Iterable[str] = ()
) -> ScanReport:
    """Statically scan a pickle (or uncompressed joblib) stream; never unpickles.

    Raises ``UnsafeArtifactError`` naming every import outside the allowlist (plus the
    reviewed ``trusted_types``, which can never re-admit a denied gadget), or saying why the
    stream could not be parsed. Returns the ``ScanReport`` when the stream is acceptable.
    """
    kind = "joblib" if joblib else "pickle"
    allowed = pickle_allowlist() | frozenset(t for t in trusted_types if not is_denied(t))
    report = ScanReport()
    if joblib and not data.startswith(b"\x80"):
        raise UnsafeArtifactError(
            "This joblib file does not start with a pickle protocol header (joblib.dump always "
            f"writes one), so it was refused. Re-save it with joblib.dump, or: {FIX}",
        )
    try:
        _Machine(report, allowed, joblib).run(io.BytesIO(data))
    except (_ScanError, ValueError, TypeError, IndexError, KeyError, OverflowError) as exc:
        raise UnsafeArtifactError(
            f"The {kind} artifact could not be parsed by loopml's static scanner ({exc}), so it "
            f"was refused without being loaded (fail-closed: a stream the scanner cannot read "
            f"is never unpickled). The file is truncated, damaged or crafted. {FIX}",
            format=kind,
        ) from exc
    if report.refused:
        names = sorted(set(report.refused))
        raise UnsafeArtifactError(
            f"The {kind} artifact imports {names}, which loopml does not allow in a pickle "
            f"(they can run code, or are not on the reviewed allowlist), so it was refused "
            f"without being loaded. If it came from an untrusted source, delete it. If every "
            f"name is a harmless type of your own, review it and add it to model.trusted_types "
            f"in loopml.yaml; denied modules (os, subprocess, builtins.eval, ...) cannot be "
            f"allowed. {FIX}",
            format=kind,
            untrusted_types=names,
        )
    report.protocol = _protocol(data)
    return report


def _protocol(data: bytes) -> int:
    return data[1] if data[:1] == b"\x80" and len(data) > 1 else 0
