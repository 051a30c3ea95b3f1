"""ONNX through onnxruntime (custom ops and external data refused); LightGBM/XGBoost native."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopml.artifacts import default_format, load_model, save_model
from loopml.errors import UnsafeArtifactError


@pytest.fixture(scope="module")
def numeric(frame):  # type: ignore[no-untyped-def]
    X, y = frame
    return X[["age", "income"]].to_numpy(np.float32), y


def test_onnx_pipeline_matches_sklearn(numeric):
    pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    X, y = numeric
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    proto = skl2onnx.convert_sklearn(
        model, initial_types=[("x", FloatTensorType([None, 2]))], target_opset=17
    )
    assert default_format(proto) == "onnx"
    served = load_model(save_model(proto, "onnx"), "onnx")
    np.testing.assert_array_equal(served.predict(X), model.predict(X))
    np.testing.assert_allclose(served.predict_proba(X), model.predict_proba(X), atol=1e-5)
    assert save_model(served, "onnx") == proto.SerializeToString()


def _tiny_graph(domain: str = "", external: bool = False) -> bytes:
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [1], [2.0])
    if external:
        w.ClearField("float_data")
        w.data_location = TensorProto.EXTERNAL
        w.external_data.add(key="location", value="/etc/passwd")
    node = helper.make_node("Mul", ["x", "w"], ["y"], domain=domain)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[w],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=8).SerializeToString()


def test_onnx_plain_graph_runs():
    pytest.importorskip("onnxruntime")
    served = load_model(_tiny_graph(), "onnx")
    np.testing.assert_array_equal(served.predict(np.ones((3, 1))), [2.0, 2.0, 2.0])


def test_onnx_custom_op_domain_is_refused():
    pytest.importorskip("onnxruntime")
    with pytest.raises(UnsafeArtifactError, match="custom operator"):
        load_model(_tiny_graph(domain="evil.ops"), "onnx")


def test_onnx_external_data_is_refused():
    pytest.importorskip("onnxruntime")
    with pytest.raises(UnsafeArtifactError, match="external data"):
        load_model(_tiny_graph(external=True), "onnx")


def test_lightgbm_native_round_trip(numeric):
    lgb = pytest.importorskip("lightgbm")
    X, y = numeric
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
    assert default_format(model) == "lightgbm"
    booster = load_model(save_model(model), "lightgbm")
    np.testing.assert_allclose(booster.predict(X), model.predict_proba(X)[:, 1], rtol=1e-12)


def test_xgboost_native_round_trip(numeric):
    xgb = pytest.importorskip("xgboost")
    X, y = numeric
    model = xgb.XGBClassifier(n_estimators=5, n_jobs=1).fit(X, y)
    assert default_format(model) == "xgboost"
    back = load_model(save_model(model), "xgboost")
    assert isinstance(back, xgb.XGBClassifier)
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))
