from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import _loop as L


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A project with two versions of the old rule, trained once by ``loopml.train.run``."""
    root = L.write_project(tmp_path_factory.mktemp("e2e") / "proj", L.config_text())
    ids = {"champion": L.train_version(root)["id"], "other": L.train_version(root, C=0.05)["id"]}
    return root, ids


@pytest.fixture
def project(trained: tuple[Path, dict[str, int]], tmp_path: Path) -> Path:
    """A copy of the trained project whose endpoint has the champion deployed."""
    from loopml.config import load_config
    from loopml.store import Store

    root = Path(shutil.copytree(trained[0], tmp_path / "proj"))
    store = Store(load_config(root).store_url)
    store.endpoints.deploy(L.ENDPOINT, store.versions.get(trained[1]["champion"]), actor="test")
    store.close()
    return root


@pytest.fixture
def versions(trained: tuple[Path, dict[str, int]]) -> dict[str, int]:
    return trained[1]


@pytest.fixture
def store(project: Path) -> Iterator[Any]:
    from loopml.config import load_config
    from loopml.store import Store

    s = Store(load_config(project).store_url)
    yield s
    s.close()
