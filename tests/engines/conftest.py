"""A small project trained once per session by the real ``loopml run`` pipeline (a classifier
with numbers and a category), copied per test; and one local Ray shared by the Ray tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_project, run_project

N_NUM = 5
NAMES = [f"f{i}" for i in range(N_NUM)]

TRAIN_PY = """
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


def train(X, y, params, seed=0):
    cats = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), cats)],
                            remainder="passthrough")
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))]).fit(X, y)
"""

CONFIG = """\
project: scoretest
data: {train: data/train.parquet, target: label, id: id}
model: {name: scoretest, train: train.py:train}
gates: {champion: {blocking: false}}
deploy: {endpoint: credit, unseen_categories: flag}
"""


def frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_NUM))
    cat = rng.choice(["a", "b", "c"], size=n)
    logit = X[:, 0] - X[:, 1] + np.where(cat == "a", 0.5, -0.5)
    out = pd.DataFrame(X, columns=NAMES)
    out["cat"] = cat
    out["id"] = np.arange(n)
    out["label"] = (np.random.default_rng(seed + 1).random(n) < 1 / (1 + np.exp(-logit))).astype(
        int
    )
    return out


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, int]:
    root = tmp_path_factory.mktemp("scoring") / "proj"
    make_project(root, config=CONFIG, frame=frame(), train_py=TRAIN_PY)
    _cfg, store, result = run_project(root)
    assert result.passed
    store.close()
    return root, int(result.version["id"])


@pytest.fixture
def project(trained, tmp_path) -> tuple[Path, int]:
    """A copy of the trained project; endpoint 'credit' has the version as champion."""
    from loopml.config import load_config
    from loopml.store import Store

    root = Path(shutil.copytree(trained[0], tmp_path / "proj"))
    store = Store(load_config(root).store_url)
    store.endpoints.deploy("credit", store.versions.get(trained[1]), actor="test")
    store.close()
    return root, trained[1]


@pytest.fixture(scope="session")
def ray_engine():
    """One local Ray with 2 CPUs for every Ray test of the session (it takes seconds to start)."""
    pytest.importorskip("ray")
    from loopml.engines import get_engine

    engine = get_engine("ray", cpus=2)
    yield engine
    import ray

    ray.shutdown()
