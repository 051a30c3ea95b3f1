"""skops with loopml's own allowlist: real pipelines round-trip; anything else is refused."""

from __future__ import annotations

import os

import numpy as np
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from loopml.artifacts import default_format, load_model, save_model
from loopml.artifacts.allowlist import skops_trusted_types
from loopml.errors import UnsafeArtifactError


class Doubler(TransformerMixin, BaseEstimator):
    """A user-defined type: not on loopml's allowlist until the user reviews it."""

    def fit(self, X, y=None):  # type: ignore[no-untyped-def]
        return self

    def transform(self, X):  # type: ignore[no-untyped-def]
        return X * 2


@pytest.mark.parametrize("name", ["hgb", "logreg", "forest"])
def test_pipeline_round_trip_predictions_identical(pipelines, frame, name):
    X, _ = frame
    model = pipelines[name]
    assert default_format(model) == "skops"
    back = load_model(save_model(model), "skops")
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))


def test_non_allowlisted_type_is_refused_and_named(frame):
    X, y = frame
    model = make_pipeline(Doubler()).fit(X[["age"]].to_numpy(), y)
    data = save_model(model, "skops")
    qualified = f"{Doubler.__module__}.Doubler"
    with pytest.raises(UnsafeArtifactError) as err:
        load_model(data, "skops")
    assert err.value.details["untrusted_types"] == [qualified]
    assert "model.trusted_types" in str(err.value) and qualified in str(err.value)
    # after review, the config's trusted_types admits it
    back = load_model(data, "skops", trusted_types=[qualified])
    assert isinstance(back.steps[0][1], Doubler)


def test_function_gadget_is_refused_even_if_configured(tmp_path):
    """FunctionTransformer(os.system) stays refused: configuration cannot trust os/posix."""
    marker = tmp_path / "pwned"
    data = sio.dumps(FunctionTransformer(os.system, kw_args={"command": f"touch {marker}"}))
    for trusted in ([], ["posix.system", "os.system"]):
        with pytest.raises(UnsafeArtifactError, match=r"posix\.system"):
            load_model(data, "skops", trusted_types=trusted)
    assert not marker.exists()


def test_allowlist_never_comes_from_the_artifact(frame):
    """The trusted list is loopml's constant (+config), whatever the file asks for."""
    X, y = frame
    data = save_model(make_pipeline(Doubler()).fit(X[["age"]].to_numpy(), y), "skops")
    asked = sio.get_untrusted_types(data=data)
    assert not set(asked) <= set(skops_trusted_types())
    assert skops_trusted_types() == skops_trusted_types(())  # no hidden inputs
