from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from loopml.data.signature import infer_signature
from loopml.errors import ValidationError
from loopml.serve.inference.request_rows import Batch
from loopml.serve.wire.validation import Validator

GOOD = {"age": [31, 40], "income": [1.5, None], "member": [True, False], "city": ["rome", "paris"]}


def test_good_rows_become_typed_arrays_and_frame(mixed_sig):
    v = Validator(mixed_sig)
    b = v.validate(GOOD)
    assert b.n == 2 and b.flags is None
    assert b.columns["age"].dtype == np.int64
    assert np.isnan(b.columns["income"][1])
    frame = v.frame(b)
    assert list(frame.columns) == ["age", "income", "member", "city"]
    assert frame["age"].tolist() == [31, 40]
    assert frame["member"].dtype == bool
    assert frame["city"].tolist() == ["rome", "paris"]


def test_all_float_signature_builds_one_block(numeric_sig, numeric_model):
    v = Validator(numeric_sig)
    b = v.validate({f"f{i}": [float(i)] for i in range(4)})
    frame = v.frame(b)
    assert frame.shape == (1, 4) and frame.dtypes.eq(np.float64).all()
    expected = numeric_model.predict(
        pd.DataFrame([[0.0, 1.0, 2.0, 3.0]], columns=numeric_sig.names)
    )
    assert numeric_model.predict(frame).tolist() == expected.tolist()


def test_missing_column_names_the_field(mixed_sig):
    cols = dict(GOOD)
    del cols["city"]
    with pytest.raises(ValidationError) as e:
        Validator(mixed_sig).validate(cols)
    assert e.value.field == "city" and "Missing" in e.value.message


def test_extra_column_rejected_by_default_dropped_on_request(mixed_sig):
    cols = {**GOOD, "zzz": [1, 2]}
    with pytest.raises(ValidationError) as e:
        Validator(mixed_sig).validate(cols)
    assert e.value.field == "zzz"
    b = Validator(mixed_sig, extra="drop").validate(cols)
    assert list(b.columns) == ["age", "income", "member", "city"]


@pytest.mark.parametrize(
    ("column", "values", "row"),
    [
        ("age", [1, "abc"], 1),
        ("age", ["1", 2], 0),
        ("income", [1.0, "abc"], 1),
        ("income", [None, "x"], 1),
        ("member", [True, "yes"], 1),
        ("member", [0, 2], 1),
        ("city", ["rome", 3], 1),
        ("city", [3, 4], 0),
    ],
)
def test_wrong_type_names_column_and_first_bad_row_without_echo(mixed_sig, column, values, row):
    cols = {**GOOD, column: values}
    with pytest.raises(ValidationError) as e:
        Validator(mixed_sig).validate(cols)
    assert e.value.field == column
    assert e.value.details["row"] == row
    body = e.value.to_dict()
    assert body["status"] == 422 and body["field"] == column
    assert "abc" not in body["error"] and "yes" not in body["error"]


def test_nested_and_ragged_values_are_type_errors(mixed_sig):
    for bad in ([[1], [2]], [[1], [2, 3]]):
        with pytest.raises(ValidationError) as e:
            Validator(mixed_sig).validate({**GOOD, "age": bad})
        assert e.value.field == "age"


def test_unequal_lengths_and_empty(mixed_sig):
    with pytest.raises(ValidationError) as e:
        Validator(mixed_sig).validate({**GOOD, "city": ["rome"]})
    assert e.value.field == "city"
    with pytest.raises(ValidationError, match="no rows"):
        Validator(mixed_sig).validate({k: [] for k in GOOD})


def test_null_policy(mixed_sig):
    cols = {**GOOD, "age": [1, None]}
    with pytest.raises(ValidationError) as e:
        Validator(mixed_sig).validate(cols)
    assert e.value.field == "age" and e.value.details["row"] == 1
    b = Validator(mixed_sig, allow_nulls=True).validate(cols)
    assert np.isnan(b.columns["age"][1])
    with pytest.raises(ValidationError) as e:
        Validator(mixed_sig).validate({**GOOD, "city": ["rome", None]})
    assert e.value.details["row"] == 1
    b = Validator(mixed_sig, allow_nulls=True).validate(
        {**GOOD, "city": [None, "rome"], "member": [None, True]}
    )
    assert b.columns["city"].tolist() == [None, "rome"]
    assert b.columns["member"].tolist() == [None, True]
    # NaN from CSV-parsed numpy columns counts as null too
    with pytest.raises(ValidationError):
        Validator(mixed_sig).validate({**GOOD, "age": np.array([1.0, np.nan])})


def test_unseen_category_policies(mixed_sig):
    cols = {**GOOD, "city": ["rome", "oslo"]}
    with pytest.raises(ValidationError) as e:
        Validator(mixed_sig).validate(cols)
    assert e.value.field == "city" and e.value.details["row"] == 1
    assert "oslo" not in e.value.message
    b = Validator(mixed_sig, unseen="flag").validate(cols)
    assert b.flags.tolist() == [None, "unseen:city"]
    b = Validator(mixed_sig, unseen="accept").validate(cols)
    assert b.flags is None and b.columns["city"].tolist() == ["rome", "oslo"]


def test_flags_join_across_columns():
    sig = infer_signature(pd.DataFrame({"a": ["x", "y"], "b": ["u", "v"]}), ["a", "b"])
    b = Validator(sig, unseen="flag").validate({"a": ["x", "new", "new"], "b": ["new", "u", "new"]})
    assert b.flags.tolist() == ["unseen:b", "unseen:a", "unseen:a,unseen:b"]


def test_batches_concat_keep_flags(mixed_sig):
    v = Validator(mixed_sig, unseen="flag")
    b1 = v.validate(GOOD)
    b2 = v.validate({**GOOD, "city": ["oslo", "rome"]})
    b = Batch.concat([b1, b2])
    assert b.n == 4 and b.flags.tolist() == [None, None, "unseen:city", None]
    assert v.frame(b)["age"].tolist() == [31, 40, 31, 40]


def test_frame_feeds_a_real_pipeline_with_categories():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=100), "c": rng.choice(["a", "b"], 100)})
    y = (df["x"] > 0).astype(int)
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["c"]), remainder="passthrough"),
        LogisticRegression(),
    ).fit(df, y)
    v = Validator(infer_signature(df, ["x", "c"]))
    frame = v.frame(v.validate({"x": [0.5, -2.0], "c": ["a", "b"]}))
    assert (
        model.predict(frame).tolist()
        == model.predict(df.iloc[:0].reindex(range(2)).assign(x=[0.5, -2.0], c=["a", "b"])).tolist()
    )


def test_nulls_are_named_before_a_model_that_cannot_take_them():
    """issue 13 item 3: a null where the model fails on one was a 422 naming neither column
    nor row; the load-time probe finds the columns that take nulls, the others are refused."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    from loopml.data.signature import Column, Signature
    from loopml.serve.inference.pool import isolating_predictor, null_takers

    sig = Signature(
        columns=(
            Column("a", "number", "float64"),
            Column("b", "number", "float64"),
            Column("c", "number", "float64", nullable=True),
        ),
        classes=(0, 1),
    )
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(100, 3)), columns=["a", "b", "c"])
    pre = ColumnTransformer(
        [("a", SimpleImputer(), ["a"]), ("c", SimpleImputer(), ["c"])], remainder="passthrough"
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(X, X["a"] > 0)
    loose = Validator(sig, allow_nulls=True)
    takes = null_takers(isolating_predictor(model, loose), loose, sig)
    assert takes == {"a"}  # 'c' is nullable in the signature already; 'b' fails in the model
    v = Validator(sig, allow_nulls=True, null_columns=takes)
    assert v.validate({"a": [None, 1.0], "b": [1.0, 2.0], "c": [None, None]}).n == 2
    with pytest.raises(ValidationError) as e:
        v.validate({"a": [1.0, 1.0], "b": [1.0, None], "c": [1.0, 1.0]})
    assert e.value.field == "b" and e.value.details["row"] == 1
    assert "does not take a missing value" in e.value.message
