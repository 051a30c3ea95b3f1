from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.data.signature import Column, Signature


@pytest.fixture
def mixed_sig() -> Signature:
    return Signature(
        columns=(
            Column("age", "number", "int64"),
            Column("income", "number", "float64", nullable=True),
            Column("member", "bool", "bool"),
            Column("city", "category", "string", categories=("berlin", "paris", "rome")),
        ),
        classes=(0, 1),
    )


@pytest.fixture
def numeric_sig() -> Signature:
    return Signature(
        columns=tuple(Column(f"f{i}", "number", "float64") for i in range(4)),
        classes=(0, 1),
    )


@pytest.fixture
def numeric_model(numeric_sig):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 4)), columns=numeric_sig.names)
    y = (X["f0"] + X["f1"] > 0).astype(int)
    return LogisticRegression().fit(X, y)


# -- the HTTP tests: a project trained once per session, copied per test ----------------------
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

import serve_helpers as h  # noqa: E402


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """A project with four versions registered by the real ``loopml run`` pipeline."""
    root = tmp_path_factory.mktemp("trained") / "proj"
    ids = h.train_project(root)
    return root, ids


@pytest.fixture
def versions(trained) -> dict[str, int]:
    return trained[1]


@pytest.fixture
def project(trained, tmp_path) -> Path:
    """A copy of the trained project whose endpoint 'credit' has the champion deployed."""
    from loopml.config import load_config
    from loopml.store import Store

    root = h.copy_project(trained[0], tmp_path / "proj")
    store = Store(load_config(root).store_url)
    store.endpoints.deploy("credit", store.versions.get(trained[1]["champion"]), actor="test")
    store.close()
    return root


@pytest.fixture
def store(project):
    from loopml.config import load_config
    from loopml.store import Store

    s = Store(load_config(project).store_url)
    yield s
    s.close()


@pytest.fixture
def keys(store) -> dict[str, str]:
    """One API key per role."""
    from loopml.types import ROLES

    return {role: store.keys.create(role, actor="test")[0] for role in ROLES}


@pytest.fixture
def settings(project):
    from loopml.config import load_config
    from loopml.serve import Settings

    return Settings.from_config(load_config(project), poll_seconds=0.05, access_log=False)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
