"""The documentation site: built strictly by MkDocs, offline, and covering every loopml.yaml
key with its default and description (generated from the configuration models)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from loopml.ui import docgen

ROOT = Path(__file__).resolve().parents[2]


def test_every_config_key_has_a_description():
    assert docgen.undocumented() == []


def test_a_new_key_without_a_description_is_caught():
    """Guards against the check passing vacuously (a key added to a section, not described)."""

    class Extra(BaseModel):
        documented: int = Field(1, description="says what it is")
        forgotten: int = 2

    keys = docgen._walk(Extra, "serve.", {})
    assert [k.path for k in keys if not k.description] == ["serve.forgotten"]


def test_the_reference_lists_every_key_with_its_default():
    from loopml.config.sections import Config

    page = docgen.config_reference()
    keys = docgen.config_keys()
    assert {k.path for k in keys} >= {
        "project",
        "data.train",
        "deploy.rollout.guards.margin",
        "monitor.alerts[].threshold",
        "gates.fairness.min_group_size",
        "gates.champion.delta",
    }
    for name in Config.model_fields:
        assert name == "root" or f"`{name}`" in page
    for k in keys:  # a row each; top-level sections are headings with their own table
        top_section = "." not in k.path and k.type.endswith("section")
        assert (f"## `{k.path}`" if top_section else f"| `{k.path}` |") in page
    assert "| `monitor.window` | duration | `1h` |" in page
    assert "| `serve.port` | integer (>= 1, <= 65535) | `8000` |" in page


def test_the_cli_and_http_references_list_every_command_and_route():
    from loopml.cli import COMMANDS
    from loopml.serve.http.application import ROUTES

    cli = docgen.cli_reference()
    assert all(f"## `loopml {name}`" in cli for name in COMMANDS)
    http = docgen.http_reference()
    assert all(f"`{path}`" in http for _, path, _, _ in ROUTES)


REMOTE = re.compile(
    r"""<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)=["'](?:https?:)?//"""
    r"""|url\(\s*["']?(?:https?:)?//|@import\s+["']?(?:url\()?["']?(?:https?:)?//""",
    re.IGNORECASE,
)


@pytest.mark.slow
def test_the_site_builds_strictly_and_loads_nothing_remote(tmp_path):
    site = tmp_path / "site"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert res.returncode == 0, res.stderr
    pages = {p.relative_to(site).as_posix() for p in site.rglob("*.html")}
    assert {
        "index.html",
        "tutorial.html",
        "concepts.html",
        "operations.html",
        "security.html",
        "reference/configuration.html",
        "reference/cli.html",
        "reference/http.html",
    } <= pages
    remote = [
        f"{p.relative_to(site)}: {m.group(0)}"
        for p in site.rglob("*")
        if p.suffix in (".html", ".css", ".js")
        for m in REMOTE.finditer(p.read_text(errors="replace"))
    ]
    assert not remote, remote
    config_page = (site / "reference/configuration.html").read_text()
    for k in docgen.config_keys():
        assert f"<code>{k.path}</code>" in config_page, k.path
