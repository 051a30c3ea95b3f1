"""Malicious pickles and joblib files are refused without ever running; benign ones load.

Every payload, if it ran, would create a marker file; each test asserts the file is absent
after the refusal, so "refused" cannot mean "refused after it already ran".
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import subprocess
import timeit

import joblib
import numpy as np
import pytest

from loopml.artifacts import load_model, save_model, scan_pickle
from loopml.errors import UnsafeArtifactError


class _Reduce:
    """Pickles as ``func(*args)``: the classic __reduce__ gadget."""

    def __init__(self, func, *args):  # type: ignore[no-untyped-def]
        self.func, self.args = func, args

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return self.func, self.args


def _text(s: str) -> bytes:
    return s.encode()


def _payloads(marker: str) -> dict[str, bytes]:
    touch = f"touch {marker}"
    code = f"open({marker!r}, 'w').close(); 1/0"
    cut = (
        b"\x80\x04\x8c\x05posix\x94\x8c\x06system\x94"  # two memoized strings
        b"00"  # popped off the stack: only the memo remembers them
        b"h\x00h\x01\x93"  # BINGET both, STACK_GLOBAL -> posix.system
        + b"\x8c"
        + bytes([len(touch)])
        + touch.encode()
        + b"\x85R."
    )
    return {
        "os.system protocol 0 text GLOBAL": _text(f"cos\nsystem\n(V{touch}\ntR."),
        "posix.system protocol 0 pickled": pickle.dumps(_Reduce(os.system, touch), protocol=0),
        "posix.system STACK_GLOBAL protocol 4": pickle.dumps(_Reduce(os.system, touch), 4),
        "posix.system STACK_GLOBAL protocol 5": pickle.dumps(_Reduce(os.system, touch), 5),
        "subprocess.Popen": pickle.dumps(_Reduce(subprocess.Popen, ["touch", marker]), 4),
        "builtins.eval": pickle.dumps(_Reduce(eval, code), 2),
        "builtins.exec protocol 1": pickle.dumps(_Reduce(exec, code), 1),
        "timeit.timeit": pickle.dumps(_Reduce(timeit.timeit, code), 4),
        "importlib.import_module + getattr": _text(
            f"cbuiltins\ngetattr\n(cimportlib\nimport_module\n(Vos\ntRVsystem\ntR(V{touch}\ntR."
        ),
        "importlib.import_module": pickle.dumps(_Reduce(importlib.import_module, "os"), 3),
        "builtins.open": pickle.dumps(_Reduce(open, marker, "w"), 4),
        "memo-indirected STACK_GLOBAL": cut,
        "INST opcode": _text(f"(V{touch}\nios\nsystem\n."),
        "posix.system inside a dict next to data": pickle.dumps(
            {"coef": np.arange(3.0), "hook": _Reduce(os.system, touch)}, 5
        ),
    }


@pytest.fixture
def marker(tmp_path) -> str:
    return str(tmp_path / "pwned")


def _refused(data: bytes, marker: str, fmt: str = "pickle") -> UnsafeArtifactError:
    with pytest.raises(UnsafeArtifactError) as err:
        load_model(data, fmt, trust_pickle=True)
    assert not os.path.exists(marker), "the payload ran"
    return err.value


@pytest.mark.parametrize("name", list(_payloads("/x")))
def test_malicious_pickle_refused_without_running(name, marker):
    data = _payloads(marker)[name]
    err = _refused(data, marker)
    assert "refused without being loaded" in str(err)
    # without trust the file is refused before any scan, for the same reason every time
    with pytest.raises(UnsafeArtifactError, match="trust_pickle: true"):
        load_model(data, "pickle")
    assert not os.path.exists(marker)


def test_refusal_names_the_gadget(marker):
    err = _refused(_payloads(marker)["memo-indirected STACK_GLOBAL"], marker)
    assert err.details["untrusted_types"] == ["posix.system"]
    err = _refused(_payloads(marker)["timeit.timeit"], marker)
    assert err.details["untrusted_types"] == ["timeit.timeit"]


def test_trusted_types_cannot_readmit_denied_gadgets(marker):
    data = _payloads(marker)["posix.system STACK_GLOBAL protocol 4"]
    with pytest.raises(UnsafeArtifactError):
        load_model(data, "pickle", trust_pickle=True, trusted_types=["posix.system"])
    assert not os.path.exists(marker)


def test_untrusted_pickle_is_refused_before_reading(marker):
    """Garbage bytes give the trust message, not a parse error: nothing was scanned."""
    with pytest.raises(UnsafeArtifactError, match="refused without being read"):
        load_model(b"\x00not a pickle", "joblib")


def test_model_next_to_payload_in_dict_is_refused(pipelines, marker):
    data = pickle.dumps({"model": pipelines["logreg"], "x": _Reduce(os.system, f"touch {marker}")})
    err = _refused(data, marker)
    assert err.details["untrusted_types"] == ["posix.system"]


def test_payload_before_model_in_joblib_file(pipelines, marker):
    buf = io.BytesIO()
    joblib.dump([_Reduce(os.system, f"touch {marker}"), pipelines["forest"]], buf)
    _refused(buf.getvalue(), marker, "joblib")


def test_payload_after_arrays_in_compressed_joblib(pipelines, marker):
    buf = io.BytesIO()
    joblib.dump([pipelines["forest"], _Reduce(os.system, f"touch {marker}")], buf, compress=3)
    _refused(buf.getvalue(), marker, "joblib")


def test_payload_inside_a_joblib_object_array(marker):
    """Object arrays are a nested pickle inside the joblib stream; it is scanned too."""
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = "fine", _Reduce(os.system, f"touch {marker}")
    buf = io.BytesIO()
    joblib.dump({"a": np.arange(5.0), "b": arr}, buf)
    err = _refused(buf.getvalue(), marker, "joblib")
    assert err.details["untrusted_types"] == ["posix.system"]


def test_joblib_array_bytes_are_skipped_not_parsed(marker):
    """Array data that looks like a pickle payload is data: joblib never unpickles it."""
    evil = pickle.dumps(_Reduce(os.system, f"touch {marker}"), 2)
    payload = np.frombuffer(evil + b"\x00" * (-len(evil) % 8), dtype=np.uint8)
    buf = io.BytesIO()
    joblib.dump({"blob": payload}, buf)
    out = load_model(buf.getvalue(), "joblib", trust_pickle=True)
    np.testing.assert_array_equal(out["blob"], payload)
    assert not os.path.exists(marker)


def test_truncated_streams_are_refused(pipelines, marker):
    whole = pickle.dumps(pipelines["logreg"], 5)
    for cut in (len(whole) // 2, len(whole) - 1):
        err = _refused(whole[:cut], marker)
        assert "could not be parsed" in str(err)
    buf = io.BytesIO()
    joblib.dump(pipelines["forest"], buf)
    data = buf.getvalue()
    _refused(data[: len(data) - 40], marker, "joblib")  # inside the last array's bytes


def test_unknown_opcode_and_persistent_id_are_refused(marker):
    _refused(b"\x80\x04\xffjunk.", marker)
    _refused(b"\x80\x02Vx\nQ.", marker)  # BINPERSID


def test_lz4_and_old_joblib_formats_are_refused(marker):
    err = _refused(b"ZF0x0000000000" + b"\x00" * 20, marker, "joblib")
    assert "pre-0.10" in str(err)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_benign_sklearn_pickles_load_when_trusted(pipelines, frame, protocol):
    X, _ = frame
    for model in pipelines.values():
        data = pickle.dumps(model, protocol=protocol)
        report = scan_pickle(data)
        assert any("Pipeline" in g for g in report.globals)
        back = load_model(data, "pickle", trust_pickle=True)
        np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("xz", 1)])
def test_benign_joblib_dump_loads_when_trusted(pipelines, frame, compress):
    X, _ = frame
    for model in pipelines.values():
        buf = io.BytesIO()
        joblib.dump(model, buf, compress=compress)
        back = load_model(buf.getvalue(), "joblib", trust_pickle=True)
        np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))


def test_save_model_pickle_and_joblib_round_trip(pipelines, frame):
    X, _ = frame
    model = pipelines["hgb"]
    for fmt in ("pickle", "joblib"):
        back = load_model(save_model(model, fmt), fmt, trust_pickle=True)
        np.testing.assert_array_equal(back.predict(X), model.predict(X))
