"""Shared fixtures: real SQLite files under tmp_path, and the real Postgres when
LOOPML_TEST_POSTGRES_URL is set (each test gets a fresh database on that server)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# OpenMP spinning threads slow scikit-learn by 10x when pytest-xdist workers share two cores
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import pytest

PG_URL = os.environ.get("LOOPML_TEST_POSTGRES_URL")
pytest_plugins = ("tests.s3server",)  # the S3 API server fixtures: s3_url, s3


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty Postgres database on the test server, dropped afterwards."""
    yield from _fresh_pg_database()


@pytest.fixture
def pg_url2() -> Iterator[str]:
    """A second fresh Postgres database, for tests that compare two stores."""
    yield from _fresh_pg_database()


def _fresh_pg_database() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("LOOPML_TEST_POSTGRES_URL is not set")
    from tests._helpers.store import fresh_pg_database

    yield from fresh_pg_database(PG_URL, "loopml_t_")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Each store test runs on a real SQLite file and on the real Postgres."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'loopml.db'}"
    return request.getfixturevalue("pg_url")


TRAIN_PY = """\
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def train(X, y, params, seed=0):
    cats = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    nums = [c for c in X.columns if c not in cats]
    pre = ColumnTransformer([("num", StandardScaler(), nums),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), cats)])
    return Pipeline([("pre", pre), ("clf", LogisticRegression(C=params.get("C", 1.0),
                                                               max_iter=500))]).fit(X, y)


def broken(X, y, params):
    raise RuntimeError("the GPU caught fire")
"""

CONFIG = """\
project: tiny
data:
  train: data/train.parquet
  target: label
  id: id
  sensitive: [sex, group]
model:
  name: tiny
  train: train.py:train
deploy:
  endpoint: tiny
"""


def synthetic_frame(n: int = 4000, seed: int = 0, n_num: int = 6) -> pd.DataFrame:
    """A small classification data set with numeric features, a category and two
    sensitive attributes; the label depends on x0, x1 and the category."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_num))
    cat = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    logit = 1.5 * X[:, 0] - 1.0 * X[:, 1] + np.where(cat == "a", 0.5, -0.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(n_num)])
    frame["cat"] = cat
    frame["sex"] = rng.choice(["1", "2"], size=n)
    frame["group"] = rng.choice(["p", "q"], size=n)
    frame["id"] = np.arange(n)
    frame["label"] = y
    return frame


def make_project(
    root: Path,
    *,
    config: str = CONFIG,
    frame: pd.DataFrame | None = None,
    store: str | None = None,
    train_py: str = TRAIN_PY,
) -> Path:
    """Write loopml.yaml, train.py and data/train.parquet under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (synthetic_frame() if frame is None else frame).to_parquet(root / "data/train.parquet")
    (root / "train.py").write_text(train_py)
    text = config if store is None else config + f"store: {store}\n"
    (root / "loopml.yaml").write_text(text)
    return root


def run_project(root: Path):  # -> (Config, Store, RunResult)
    """One ``loopml run`` of the project at ``root`` that registers a version: its config, its
    store (open; the caller closes it) and the run's result."""
    from loopml.config import load_config
    from loopml.store import Store
    from loopml.train import run

    cfg = load_config(root)
    store = Store(cfg.store_url)
    result = run(cfg, store=store)
    assert result.version is not None
    return cfg, store, result


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small working project on a SQLite store under tmp_path."""
    return make_project(tmp_path / "proj")
