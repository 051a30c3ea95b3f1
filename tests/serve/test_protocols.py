from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopml.errors import DataError, ValidationError
from loopml.serve.wire import oip
from loopml.serve.wire import protocols as p
from loopml.serve.wire.validation import Validator


def test_loopml_rows_and_split_give_the_same_columns(mixed_sig):
    rows = [
        {"age": 1, "income": 2.0, "member": True, "city": "rome"},
        {"age": 3, "income": None, "member": False, "city": "paris"},
    ]
    a = p.parse_loopml(json.dumps({"rows": rows}).encode()).columns
    b = p.parse_loopml(
        json.dumps({"columns": list(rows[0]), "data": [list(r.values()) for r in rows]}).encode()
    ).columns
    assert (
        a
        == b
        == {
            "age": [1, 3],
            "income": [2.0, None],
            "member": [True, False],
            "city": ["rome", "paris"],
        }
    )
    one = p.parse_loopml(json.dumps({"rows": rows[:1]}).encode()).columns
    assert one == {k: v[:1] for k, v in a.items()}
    Validator(mixed_sig).validate(a)


def test_row_with_different_columns_names_the_row():
    with pytest.raises(ValidationError) as e:
        p.parse_loopml(b'{"rows": [{"a": 1, "b": 2}, {"a": 1, "c": 2}]}')
    assert e.value.field == "rows[1]" and e.value.details["row"] == 1
    with pytest.raises(ValidationError) as e:
        p.parse_loopml(b'{"rows": [{"a": 1, "b": 2}, {"a": 1}]}')
    assert e.value.field == "rows[1]"
    with pytest.raises(DataError) as e:
        p.parse_loopml(b'{"rows": [{"a": 1}, [1]]}')
    assert e.value.field == "rows[1]"
    with pytest.raises(ValidationError) as e:
        p.parse_loopml(b'{"columns": ["a", "b"], "data": [[1, 2], [3]]}')
    assert e.value.field == "body.data[1]"


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        (b"", "body", 400),
        (b"\x00not json at all", "body", 400),
        (b"[1, 2]", "body", 422),
        (b'{"rows": []}', "rows", 422),
        (b'{"rows": [1]}', "rows[0]", 422),
        (b'{"data": [[1]]}', "columns", 422),
        (b'{"columns": ["a", "a"], "data": [[1, 2]]}', "body.columns", 422),
        (b'{"something": 1}', "body", 422),
    ],
)
def test_bad_loopml_bodies_name_the_field(body, field, status):
    with pytest.raises(DataError) as e:
        p.parse_loopml(body)
    d = e.value.to_dict()
    assert (d["field"], d["status"]) == (field, status)
    assert set(d) <= {"error", "field", "status", "row"}
    assert json.loads(p.error_body(e.value)) == d
    if body:
        assert body.decode(errors="replace")[3:] not in d["error"]


def test_encode_loopml_handles_numpy():
    body = p.encode_loopml(["r1", "r2"], np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), 3)
    assert json.loads(body) == {
        "request_ids": ["r1", "r2"],
        "predictions": [0, 1],
        "probabilities": [[0.9, 0.1], [0.2, 0.8]],
        "model_version": 3,
    }
    body = p.encode_loopml(["r1"], np.array(["yes"], dtype=object), None, 1)
    assert json.loads(body)["predictions"] == ["yes"]


def _mlflow_bodies(frame: pd.DataFrame):
    """The four JSON shapes MLflow's clients send (pandas' orient= output, TF-serving forms)."""
    split = json.loads(frame.to_json(orient="split", index=False))
    yield {"dataframe_split": split}
    yield {"dataframe_records": json.loads(frame.to_json(orient="records"))}
    yield {"instances": json.loads(frame.to_json(orient="records"))}
    yield {"inputs": {c: frame[c].tolist() for c in frame.columns}}
    yield {"inputs": frame.to_numpy().tolist()}  # positional tensor rows
    yield {"instances": frame.to_numpy().tolist(), "params": {"k": 1}}


def test_mlflow_formats_all_reach_the_same_columns(numeric_sig):
    frame = pd.DataFrame(np.arange(8.0).reshape(2, 4), columns=numeric_sig.names)
    v = Validator(numeric_sig)
    expected = v.frame(v.validate({c: frame[c].tolist() for c in frame.columns}))
    for body in _mlflow_bodies(frame):
        req = p.parse_mlflow(json.dumps(body).encode(), "application/json", numeric_sig)
        got = v.frame(v.validate(req.columns))
        pd.testing.assert_frame_equal(got, expected)
        assert req.params == body.get("params")
    csv = frame.to_csv(index=False).encode()
    req = p.parse_mlflow(csv, "text/csv", numeric_sig)
    pd.testing.assert_frame_equal(v.frame(v.validate(req.columns)), expected)
    assert json.loads(p.encode_mlflow(np.array([0, 1]))) == {"predictions": [0, 1]}


def test_mlflow_csv_keeps_categories_as_text_and_reports_bad_numbers(mixed_sig):
    v = Validator(mixed_sig, allow_nulls=True)
    csv = b"age,income,member,city\n1,,True,rome\n2,3.5,False,paris\n"
    b = v.validate(p.parse_mlflow(csv, "text/csv; charset=utf-8", mixed_sig).columns)
    assert b.columns["city"].tolist() == ["rome", "paris"]
    assert np.isnan(b.columns["income"][0])
    bad = b"age,income,member,city\n1,abc,True,rome\n"
    with pytest.raises(ValidationError) as e:
        v.validate(p.parse_mlflow(bad, "text/csv", mixed_sig).columns)
    assert (e.value.field, e.value.details["row"]) == ("income", 0)


@pytest.mark.parametrize(
    ("body", "ctype", "field", "status"),
    [
        (b'{"dataframe_records": [], "inputs": []}', "application/json", "body", 422),
        (b'{"dataframe_split": [1]}', "application/json", "dataframe_split", 422),
        (b'{"inputs": [1, 2], "params": 3}', "application/json", "params", 422),
        (b'{"inputs": []}', "application/json", "inputs", 422),
        (b"{}", "application/xml", "content-type", 415),
        (b"{}", "application/json; charset=latin-1", "content-type", 415),
        (b'\xff\xfe"a', "text/csv", "body", 422),
    ],
)
def test_bad_mlflow_bodies(numeric_sig, body, ctype, field, status):
    with pytest.raises(DataError) as e:
        p.parse_mlflow(body, ctype, numeric_sig)
    assert (e.value.field, e.value.to_dict()["status"]) == (field, status)


def test_v2_metadata_from_signature(mixed_sig):
    meta = oip.v2_metadata("credit", [3, 4], mixed_sig)
    assert meta["name"] == "credit" and meta["versions"] == ["3", "4"]
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        ("age", "INT64", [-1]),
        ("income", "FP64", [-1]),
        ("member", "BOOL", [-1]),
        ("city", "BYTES", [-1]),
    ]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    assert meta["outputs"][0]["datatype"] == "INT64"
    assert meta["outputs"][1]["shape"] == [-1, 2]


def test_v2_columns_and_tensor(numeric_sig, mixed_sig):
    body = {
        "id": "q1",
        "inputs": [
            {"name": "age", "shape": [2], "datatype": "INT64", "data": [1, 2]},
            {"name": "income", "shape": [2, 1], "datatype": "FP64", "data": [[1.5], [2.5]]},
            {"name": "member", "shape": [2], "datatype": "BOOL", "data": [True, False]},
            {"name": "city", "shape": [2], "datatype": "BYTES", "data": ["rome", "paris"]},
        ],
        "outputs": [{"name": "predict"}],
    }
    req = oip.parse_v2(json.dumps(body).encode(), mixed_sig)
    assert req.id == "q1" and req.outputs == ("predict",)
    assert Validator(mixed_sig).validate(req.columns).n == 2
    tensor = {
        "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": list(range(8))}]
    }
    req = oip.parse_v2(json.dumps(tensor).encode(), numeric_sig)
    v = Validator(numeric_sig)
    assert v.frame(v.validate(req.columns)).to_numpy().tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]


@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ([{"name": "f0", "shape": [2], "datatype": "FP64", "data": [1.0]}], "inputs[0].data"),
        ([{"name": "f0", "shape": [1], "datatype": "FLOAT", "data": [1.0]}], "inputs[0].datatype"),
        ([{"name": "f0", "shape": "1", "datatype": "FP64", "data": [1.0]}], "inputs[0].shape"),
        ([{"name": "f0", "shape": [1], "datatype": "BYTES", "data": ["a"]}], "f0"),
        (
            [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}],
            "inputs[0].shape",
        ),
        (
            [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, "a", 4]}],
            "inputs[0].data",
        ),
        ([], "inputs"),
    ],
)
def test_v2_bad_inputs(numeric_sig, inputs, field):
    with pytest.raises(DataError) as e:
        oip.parse_v2(json.dumps({"inputs": inputs}).encode(), numeric_sig)
    assert e.value.field == field


def test_v2_with_the_triton_client(numeric_sig, mixed_sig):
    """tritonclient builds the request and parses our answer (JSON, no binary extension)."""
    httpclient = pytest.importorskip("tritonclient.http")
    from tritonclient.http._utils import _get_inference_request

    inputs = []
    for name, arr in (
        ("age", np.array([30, 40], dtype=np.int64)),
        ("income", np.array([1.0, 2.0])),
        ("member", np.array([True, False])),
        ("city", np.array(["rome", "paris"], dtype=object)),
    ):
        dtype = {"i": "INT64", "f": "FP64", "b": "BOOL", "O": "BYTES"}[arr.dtype.kind]
        inp = httpclient.InferInput(name, list(arr.shape), dtype)
        inp.set_data_from_numpy(arr, binary_data=False)
        inputs.append(inp)
    outputs = [
        httpclient.InferRequestedOutput(n, binary_data=False) for n in ("predict", "predict_proba")
    ]
    body, _ = _get_inference_request(inputs, "rq-7", outputs, 0, False, False, 0, None, None)
    req = oip.parse_v2(body, mixed_sig)
    batch = Validator(mixed_sig).validate(req.columns)
    assert batch.columns["city"].tolist() == ["rome", "paris"]
    answer, head = oip.encode_v2(
        "credit", 3, req.id, np.array([0, 1]), np.array([[0.7, 0.3], [0.4, 0.6]]), req.outputs
    )
    assert head is None
    result = httpclient.InferResult.from_response_body(answer)
    assert result.get_response()["id"] == "rq-7"
    assert result.as_numpy("predict").tolist() == [0, 1]
    assert result.as_numpy("predict_proba").tolist() == [[0.7, 0.3], [0.4, 0.6]]
    labels, _ = oip.encode_v2("credit", 3, "x", np.array(["no", "yes"], dtype=object), None)
    assert httpclient.InferResult.from_response_body(labels).as_numpy("predict").tolist() == [
        "no",
        "yes",
    ]


def _triton_body(inputs, outputs=None, binary=True):
    """A request body as tritonclient builds it: (body, header length or None)."""
    httpclient = pytest.importorskip("tritonclient.http")
    from tritonclient.http._utils import _get_inference_request
    from tritonclient.utils import np_to_triton_dtype

    tensors = []
    for name, arr in inputs:
        dtype = "BYTES" if arr.dtype.kind == "O" else np_to_triton_dtype(arr.dtype)
        inp = httpclient.InferInput(name, list(arr.shape), dtype)
        inp.set_data_from_numpy(arr, binary_data=binary)
        tensors.append(inp)
    body, n = _get_inference_request(tensors, "", outputs, 0, False, False, 0, None, None)
    return body, None if n is None else str(n)


def test_v2_binary_tensors_in_and_out(mixed_sig):
    """The binary tensor extension, every datatype of the signature, both directions."""
    httpclient = pytest.importorskip("tritonclient.http")
    body, n = _triton_body(
        [
            ("age", np.array([30, 40], dtype=np.int64)),
            ("income", np.array([1.5, np.nan])),
            ("member", np.array([True, False])),
            ("city", np.array(["rome", "münchen"], dtype=object)),
        ]
    )
    req = oip.parse_v2(body, mixed_sig, n)
    batch = Validator(mixed_sig, unseen="accept").validate(req.columns)
    assert batch.columns["age"].tolist() == [30, 40]
    assert batch.columns["member"].tolist() == [True, False]
    assert batch.columns["city"].tolist() == ["rome", "münchen"]
    assert np.isnan(batch.columns["income"][1])
    assert req.binary_outputs == {"predict", "predict_proba"}  # no outputs named: all binary
    answer, head = oip.encode_v2(
        "credit",
        3,
        "x",
        np.array(["no", "yes"], dtype=object),
        np.array([[0.7, 0.3]] * 2),
        None,
        req.binary_outputs,
    )
    result = httpclient.InferResult.from_response_body(answer, header_length=head)
    assert result.as_numpy("predict").tolist() == [b"no", b"yes"]
    assert result.as_numpy("predict_proba").tolist() == [[0.7, 0.3]] * 2


@pytest.mark.parametrize(
    ("cut", "field"),
    [
        (lambda body, n: (body, "abc"), "inference-header-content-length"),
        (lambda body, n: (body, str(len(body) + 1)), "inference-header-content-length"),
        (lambda body, n: (body[:-3], n), "inputs[1].parameters.binary_data_size"),
        (lambda body, n: (body + b"xx", n), "body"),
        (lambda body, n: (body, None), "body"),  # binary bytes read as JSON: 400
    ],
)
def test_v2_binary_bad_bodies(numeric_sig, cut, field):
    """A header length or binary part that does not add up is a 4xx naming the field."""
    body, n = _triton_body([("f0", np.array([1.0])), ("f1", np.array([2.0]))])
    body, n = cut(body, n)
    with pytest.raises(p.LoopmlError) as e:
        oip.parse_v2(body, numeric_sig, n)
    assert e.value.field == field and e.value.http_status in (400, 422)


def test_v2_binary_bytes_that_are_not_length_prefixed(mixed_sig):
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "city",
                    "shape": [2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": 7},
                }
            ]
        }
    ).encode()
    with pytest.raises(DataError) as e:
        oip.parse_v2(head + b"\x03\x00\x00\x00abc", mixed_sig, str(len(head)))
    assert e.value.field == "inputs[0].parameters.binary_data_size"


@pytest.mark.parametrize(
    ("inp", "field"),
    [
        # issue 14 item 6: these answered 500
        ({"name": "f0", "shape": [2], "datatype": "FP64", "data": [[62.0], 5.0]}, "inputs[0].data"),
        ({"name": "f0", "shape": [1], "datatype": ["FP64"], "data": [1.0]}, "inputs[0].datatype"),
        ({"name": "f0", "shape": [1], "datatype": {"a": 1}, "data": [1.0]}, "inputs[0].datatype"),
        ({"name": "f0", "shape": [True], "datatype": "FP64", "data": [1.0]}, "inputs[0].shape"),
    ],
)
def test_v2_malformed_inputs_are_4xx(numeric_sig, inp, field):
    with pytest.raises(DataError) as e:
        oip.parse_v2(json.dumps({"inputs": [inp]}).encode(), numeric_sig)
    assert e.value.field == field


def test_v2_errors_cap_what_they_echo(numeric_sig):
    """issue 14 item 7: two inputs named with 1,000,000 characters gave a 2 MB error."""
    name = "n" * 1_000_000
    inp = {"name": name, "shape": [1], "datatype": "FP64", "data": [1.0]}
    with pytest.raises(DataError) as e:
        oip.parse_v2(json.dumps({"inputs": [inp, inp]}).encode(), numeric_sig)
    assert len(e.value.message) < 200 and len(e.value.field) <= 64


def test_v2_binary_feature_tensor(numeric_sig):
    """One [n, features] FP32 tensor in binary (what a numpy-minded client sends)."""
    block = np.arange(8, dtype=np.float32).reshape(2, 4)
    body, n = _triton_body([("x", block)])
    req = oip.parse_v2(body, numeric_sig, n)
    v = Validator(numeric_sig)
    assert v.frame(v.validate(req.columns)).to_numpy().tolist() == block.tolist()


_json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
_v2_input = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["f0", "f1", "x"]) | _json,
        "shape": st.lists(st.integers(-1, 3), max_size=3) | _json,
        "datatype": st.sampled_from(["FP64", "INT64", "BYTES", "BOOL"]) | _json,
    },
    optional={
        "data": _json,
        "parameters": st.fixed_dictionaries({"binary_data_size": st.integers(-2, 20)}) | _json,
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    inputs=st.lists(_v2_input, max_size=3) | _json,
    outputs=st.none() | _json,
    tail=st.binary(max_size=24),
    header=st.booleans(),
)
def test_v2_parser_raises_only_loopml_errors(numeric_sig, inputs, outputs, tail, header):
    """issue 14 item 6: any body is a parsed request or a LoopmlError (a 4xx), never a 500."""
    doc: dict = {"inputs": inputs}
    if outputs is not None:
        doc["outputs"] = outputs
    head = json.dumps(doc).encode()
    try:
        req = oip.parse_v2(head + tail, numeric_sig, str(len(head)) if header else None)
        Validator(numeric_sig, allow_nulls=True).validate(req.columns)
    except p.LoopmlError as exc:
        assert 400 <= exc.http_status < 500
