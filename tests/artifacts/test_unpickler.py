"""Issue 14 defect 11: pickle and joblib are loaded with a find_class allowlist after the
scan, so a gap between what the scanner parses and what the unpickler imports stays closed."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from loopml.artifacts.allowlist import pickle_allowlist
from loopml.artifacts.unpickler import load_joblib, load_pickle
from loopml.errors import UnsafeArtifactError


class _Gadget:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return os.system, (f"touch {self.marker}",)


def _model() -> LogisticRegression:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))


def test_the_load_time_check_refuses_a_gadget_the_scan_never_saw(tmp_path):
    """As if the scanner had a gap: the unpickler alone refuses, and nothing runs."""
    marker = tmp_path / "ran"
    data = pickle.dumps(_Gadget(str(marker)), protocol=2)
    with pytest.raises(UnsafeArtifactError, match=r"posix\.system|os\.system"):
        load_pickle(data, pickle_allowlist())
    buf = io.BytesIO()
    joblib.dump(_Gadget(str(marker)), buf)
    with pytest.raises(UnsafeArtifactError):
        load_joblib(buf.getvalue(), pickle_allowlist())
    assert not marker.exists()


def test_each_import_is_checked_against_the_given_list():
    model = _model()
    data = pickle.dumps(model)
    with pytest.raises(UnsafeArtifactError, match="LogisticRegression"):
        load_pickle(
            data, pickle_allowlist() - {"sklearn.linear_model._logistic.LogisticRegression"}
        )
    for proto in (0, 2, 5):  # old protocols go through the Python 2 name mapping too
        back = load_pickle(pickle.dumps(model, protocol=proto), pickle_allowlist())
        assert np.array_equal(back.coef_, model.coef_)
    buf = io.BytesIO()
    joblib.dump(model, buf)
    back = load_joblib(buf.getvalue(), pickle_allowlist())
    assert np.array_equal(back.coef_, model.coef_)


EVIL_TRAIN = """
import os
from sklearn.linear_model import LogisticRegression

MARKER = {marker!r}


class Evil(LogisticRegression):
    def __reduce__(self):
        return os.system, ("touch " + MARKER,)


def train(X, y, params, seed=0):
    return Evil(max_iter=500).fit(X, y)
"""


def test_a_refused_artifact_is_not_kept_and_the_run_says_so(tmp_path, capsys):
    """Defect 12: the malicious pickle of a refused run stayed in the artifact store."""
    from loopml.cli import main
    from loopml.config import load_config
    from tests.conftest import CONFIG, make_project, synthetic_frame

    marker = tmp_path / "ran"
    frame = synthetic_frame().drop(columns=["cat"])
    frame["sex"] = frame["sex"].astype(int)
    frame["group"] = (frame["group"] == "p").astype(int)
    config = CONFIG.replace(
        "  train: train.py:train\n",
        "  train: train.py:train\n  format: pickle\n  trust_pickle: true\n",
    )
    root = make_project(tmp_path / "p", config=config, frame=frame)
    (root / "train.py").write_text(EVIL_TRAIN.format(marker=str(marker)))
    code = main(["-c", str(root), "run"])
    said = capsys.readouterr()
    said = (
        said.out + said.err
    )  # the run's verdicts (issue 12: a refused artifact still records them)
    assert code == 1 and "was not kept in the artifact store" in " ".join(said.split()), said
    stored = [p for p in Path(load_config(root).artifacts_root).rglob("*.pkl")]
    assert stored == []
    assert not marker.exists()
