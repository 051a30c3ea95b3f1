"""The dashboard tests' world: built once per session (training is the slow part), copied per
module so that tests that act (promote, disable, label) never see each other's changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui import scenario


@pytest.fixture(scope="session")
def world_template(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("ui-world") / "proj"
    return root, scenario.build(root)


@pytest.fixture(scope="module")
def world(world_template, tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    src, info = world_template
    return scenario.copy(src, tmp_path_factory.mktemp("ui-copy") / "proj"), info
