"""ONNX models served through onnxruntime, with a scikit-learn-like face.

``OnnxModel`` wraps an ``onnxruntime.InferenceSession`` with ``predict``/``predict_proba`` on a
DataFrame or a numpy array, so the serving layer treats it like any estimator. The file is a
protobuf holding data, not code; what can still run code is a custom-op shared library or an
external-data path, so both are refused before a session is created (MITRE ATLAS M0011).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loopml.errors import DataError, UnsafeArtifactError, UsageError

_STANDARD_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training", "com.microsoft"}
)
_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": object,
}


def _require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise UsageError(
            "Loading an ONNX model needs onnxruntime, which is not installed. Run "
            "`pip install loopml[onnx]` (or `pip install onnxruntime`) and load again.",
            field="model.format",
        ) from exc
    return onnxruntime


def check_onnx(data: bytes) -> None:
    """Refuse custom-op domains and external-data tensors (needs the ``onnx`` package)."""
    try:
        import onnx
        from onnx.external_data_helper import _get_all_tensors
    except ImportError:
        return  # onnxruntime alone: sessions are built from bytes, never a path (see load)
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf raises its own DecodeError type
        raise DataError(
            f"The ONNX artifact is not a valid ONNX model ({exc}). Re-export it.",
            field="artifact",
        ) from exc
    domains = {o.domain for o in proto.opset_import} | {n.domain for n in proto.graph.node}
    custom = sorted(domains - _STANDARD_DOMAINS)
    if custom or proto.functions:
        raise UnsafeArtifactError(
            f"The ONNX model uses custom operator domains {custom or '(model-local functions)'}, "
            f"which need a custom-op library loopml will not load. Export it with standard "
            f"ONNX / ai.onnx.ml operators only.",
            field="artifact",
            domains=custom,
        )
    external = [t.name for t in _get_all_tensors(proto) if t.data_location == 1]
    if external:
        raise UnsafeArtifactError(
            f"The ONNX model keeps tensors {external[:5]} in external data files, which loopml "
            f"refuses (an external path can point anywhere on the server). Save it with all "
            f"tensors inside the model file (onnx.save_model(..., save_as_external_data=False)).",
            field="artifact",
        )


class OnnxModel:
    """An ONNX model with ``predict`` and ``predict_proba``, like a scikit-learn classifier."""

    def __init__(self, data: bytes) -> None:
        ort = _require_onnxruntime()
        check_onnx(data)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                data, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise DataError(
                f"onnxruntime could not load the ONNX artifact ({exc}). Re-export the model "
                f"with an opset this onnxruntime {ort.__version__} supports.",
                field="artifact",
            ) from exc
        self.data = data
        self.inputs = [(i.name, i.type) for i in self._session.get_inputs()]
        self.outputs = [o.name for o in self._session.get_outputs()]
        self.classes_: np.ndarray | None = None

    def _feed(self, X: Any) -> dict[str, np.ndarray]:
        if hasattr(X, "columns") and len(self.inputs) > 1:
            missing = [n for n, _ in self.inputs if n not in X.columns]
            if missing:
                raise DataError(
                    f"The ONNX model needs input columns {missing}, which the rows lack.",
                    field=missing[0],
                )
            return {
                n: np.asarray(X[n].to_numpy(), dtype=_DTYPES.get(t, np.float32)).reshape(-1, 1)
                for n, t in self.inputs
            }
        name, kind = self.inputs[0]
        arr = np.asarray(X.to_numpy() if hasattr(X, "to_numpy") else X)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        return {name: arr.astype(_DTYPES.get(kind, np.float32), copy=False)}

    def _run(self, X: Any) -> list[Any]:
        return self._session.run(None, self._feed(X))

    def predict(self, X: Any) -> np.ndarray:
        """The model's first output (labels for a classifier, values for a regressor)."""
        return np.asarray(self._run(X)[0]).ravel()

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n, classes); ZipMap outputs are turned into arrays."""
        out = self._run(X)
        if len(out) < 2:
            raise UsageError(
                "This ONNX model has a single output, so it gives no probabilities.",
                field="predict_proba",
            )
        proba = out[1]
        if isinstance(proba, list):  # ZipMap: one {class: probability} dict per row
            import pandas as pd

            frame = pd.DataFrame.from_records(proba)
            frame = frame[sorted(frame.columns)]
            self.classes_ = frame.columns.to_numpy()
            return frame.to_numpy(dtype=np.float64)
        return np.asarray(proba, dtype=np.float64)
