"""Model bytes in and out: skops (default), ONNX, LightGBM/XGBoost native, pickle/joblib.

Loading is where an artifact could run code, so each format has one safe path:

* ``skops``: ``skops.io.loads`` with loopml's reviewed allowlist plus the model's configured
  ``trusted_types``; the list is never taken from the artifact. Anything else in the file is
  refused with the names to review.
* ``onnx``: onnxruntime from bytes, refusing custom-op domains and external data.
* ``lightgbm`` / ``xgboost``: the libraries' own text/JSON model formats (data, not code).
* ``pickle`` / ``joblib``: refused unless ``trust_pickle=True``; then the static opcode scan
  (``pickle_scan``) must pass before a single byte is unpickled, and the unpickler itself
  imports only the same allowlist (``unpickler``).
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from collections.abc import Sequence
from typing import Any

from loopml.artifacts.allowlist import is_denied, pickle_allowlist, skops_trusted_types
from loopml.artifacts.compression import decompress_joblib
from loopml.artifacts.pickle_scan import scan_pickle
from loopml.artifacts.unpickler import load_joblib, load_pickle
from loopml.errors import DataError, UnsafeArtifactError, UsageError

FORMATS = ("skops", "onnx", "lightgbm", "xgboost", "pickle", "joblib")
SUFFIXES = {
    "skops": ".skops",
    "onnx": ".onnx",
    "lightgbm": ".lgb.txt",
    "xgboost": ".xgb.json",
    "pickle": ".pkl",
    "joblib": ".joblib",
}


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(
            f"Model format {fmt!r} is not supported. Use one of {list(FORMATS)} "
            f"(model.format in loopml.yaml).",
            field="model.format",
        )
    return fmt


def _module(obj: Any) -> str:
    return type(obj).__module__.split(".", 1)[0]


def default_format(model: Any) -> str:
    """The format loopml saves ``model`` in when loopml.yaml does not say."""
    top = _module(model)
    if top in ("lightgbm", "xgboost"):
        return top
    if top in ("onnx", "loopml") and (
        hasattr(model, "SerializeToString") or hasattr(model, "data")
    ):
        return "onnx"
    return "skops"


def _require(package: str, extra: str) -> Any:
    try:
        return __import__(package)
    except ImportError as exc:
        raise UsageError(
            f"The model format needs the {package!r} package, which is not installed. Run "
            f"`pip install {extra}` and try again.",
            field="model.format",
        ) from exc


# --- saving ---------------------------------------------------------------------------------
def save_model(model: Any, fmt: str | None = None) -> bytes:
    """Serialise ``model`` in ``fmt`` (default: ``default_format(model)``) and return the bytes."""
    fmt = _check_format(fmt or default_format(model))
    if fmt == "skops":
        import skops.io as sio

        try:
            return sio.dumps(model)
        except Exception as exc:  # skops raises TypeError/ValueError/... for unsupported objects
            raise UsageError(
                f"The model could not be saved as skops ({exc}). Save it as 'onnx', or as "
                f"'joblib' with trust_pickle: true if you accept the risk.",
                field="model.format",
            ) from exc
    if fmt == "onnx":
        if hasattr(model, "SerializeToString"):
            return model.SerializeToString()
        if isinstance(getattr(model, "data", None), bytes):
            return model.data
        raise UsageError(
            "Format 'onnx' needs an ONNX ModelProto (convert the estimator with skl2onnx "
            "first) or a loaded loopml OnnxModel.",
            field="model.format",
        )
    if fmt == "lightgbm":
        booster = getattr(model, "booster_", model)
        if not hasattr(booster, "model_to_string"):
            raise UsageError("Format 'lightgbm' needs a LightGBM model.", field="model.format")
        return booster.model_to_string().encode("utf-8")
    if fmt == "xgboost":
        if not hasattr(model, "save_model"):
            raise UsageError("Format 'xgboost' needs an XGBoost model.", field="model.format")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.json")
            model.save_model(path)
            with open(path, "rb") as f:
                return f.read()
    if fmt == "joblib":
        import joblib

        buf = io.BytesIO()
        joblib.dump(model, buf)
        return buf.getvalue()
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


# --- loading --------------------------------------------------------------------------------
def load_model(
    data: bytes,
    fmt: str,
    *,
    trusted_types: Sequence[str] = (),
    trust_pickle: bool = False,
) -> Any:
    """Rebuild a model from artifact bytes without running code the artifact brings.

    ``trusted_types`` are the reviewed extra type names from ``model.trusted_types`` in
    loopml.yaml. ``trust_pickle`` must be true for pickle/joblib, which are then scanned.
    """
    fmt = _check_format(fmt)
    if fmt == "skops":
        return _load_skops(data, trusted_types)
    if fmt == "onnx":
        from loopml.artifacts.onnx_model import OnnxModel

        return OnnxModel(data)
    if fmt == "lightgbm":
        lgb = _require("lightgbm", "lightgbm")
        try:
            return lgb.Booster(model_str=data.decode("utf-8"))
        except (UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
            raise DataError(
                f"The LightGBM artifact is not a LightGBM text model ({exc}).", field="artifact"
            ) from exc
    if fmt == "xgboost":
        return _load_xgboost(data)
    return _load_pickle(data, fmt, trusted_types, trust_pickle)


def _load_skops(data: bytes, trusted_types: Sequence[str]) -> Any:
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    trusted = skops_trusted_types(trusted_types)
    try:
        return sio.loads(data, trusted=trusted)
    except UntrustedTypesFoundException as exc:
        # get_untrusted_types only *reports* what the file asks for; it never grants trust.
        asked = sorted(set(sio.get_untrusted_types(data=data)) - set(trusted))
        raise UnsafeArtifactError(
            f"The skops artifact contains types outside loopml's allowlist: {asked}. It was "
            f"not loaded. Review each one (is it a class you expect in this model, with no "
            f"side effects when built?) and, if so, add it to model.trusted_types in "
            f"loopml.yaml; never copy the list from the artifact without reading it.",
            field="model.trusted_types",
            untrusted_types=asked,
        ) from exc
    except ImportError as exc:  # a class whose module is not importable here
        raise DataError(
            f"The model needs a module that cannot be imported here ({type(exc).__name__}: "
            f"{exc}). A class from the project's own modules imports when the project folder "
            f"is on the import path (loopml run, serve, monitor and retraining put it there); "
            f"otherwise install that module where the model is loaded.",
            field="artifact",
        ) from exc
    except Exception as exc:  # a damaged zip or schema: zipfile/json/KeyError/...
        raise DataError(
            f"The skops artifact could not be read ({type(exc).__name__}: {exc}). The file is "
            f"not a skops model, or was written by an incompatible skops/scikit-learn version; "
            f"re-train or re-save it.",
            field="artifact",
        ) from exc


def _load_xgboost(data: bytes) -> Any:
    import json

    xgb = _require("xgboost", "xgboost")
    try:
        attrs = json.loads(data).get("learner", {}).get("attributes", {})
        kind = json.loads(attrs["scikit_learn"]).get("_estimator_type") if attrs else None
    except (ValueError, AttributeError, TypeError) as exc:
        raise DataError(
            f"The XGBoost artifact is not an XGBoost JSON model ({exc}).", field="artifact"
        ) from exc
    cls = {"classifier": xgb.XGBClassifier, "regressor": xgb.XGBRegressor}.get(str(kind))
    model = cls() if cls else xgb.Booster()
    try:
        model.load_model(bytearray(data))
    except xgb.core.XGBoostError as exc:
        raise DataError(f"XGBoost could not load the artifact ({exc}).", field="artifact") from exc
    return model


def _load_pickle(data: bytes, fmt: str, trusted_types: Sequence[str], trust: bool) -> Any:
    if not trust:
        raise UnsafeArtifactError(
            f"The model artifact is a {fmt} file, and loading {fmt} can run arbitrary code, so "
            f"it was refused without being read. Re-save the model as 'skops' (or 'onnx'). If "
            f"you produced this file yourself and accept the risk, set trust_pickle: true for "
            f"the model in loopml.yaml; it will still be scanned before loading.",
            field="model.trust_pickle",
        )
    allowed = pickle_allowlist() | frozenset(t for t in trusted_types if not is_denied(t))
    if fmt == "pickle":
        scan_pickle(data, trusted_types=trusted_types)
        return load_pickle(data, allowed)  # scanned above, and checked again at each import
    plain = decompress_joblib(data)
    scan_pickle(plain, joblib=True, trusted_types=trusted_types)
    return load_joblib(plain, allowed)  # the exact bytes that were scanned
