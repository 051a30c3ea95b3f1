"""SECURITY.md names, for each ATLAS mitigation, the tests that prove it: every one exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_every_test_named_in_security_md_exists():
    text = (ROOT / "SECURITY.md").read_text()
    checked, current = 0, None
    for token in re.findall(r"`((?:tests/[\w/]+\.py)?(?:::\w+)?)`", text):
        file, _, name = token.partition("::")
        if file:
            current = ROOT / file
            assert current.exists(), file
        if name:
            assert current is not None, token
            assert re.search(rf"def {name}\(", current.read_text()), f"{current}::{name}"
        checked += 1
    assert checked > 25
