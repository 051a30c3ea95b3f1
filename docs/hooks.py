"""MkDocs hook: add the reference pages generated from the code (``loopml.ui.docgen``), so
the configuration, command-line and HTTP references cannot drift from what loopml accepts."""

from __future__ import annotations

from typing import Any


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    from loopml.ui.docgen import PAGES

    for uri, make in PAGES.items():
        files.append(File.generated(config, uri, content=make()))
    return files
