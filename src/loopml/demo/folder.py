"""Where the demo writes its project: a fresh folder each run, and how to run ``loopml``
on it afterwards."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

MARKER = ".loopml-demo"  # written into the demo's folder: only such a folder is ever emptied


def fresh_project(dest: Path) -> bool:
    """Empty ``dest`` if an earlier demo wrote it (True), so that this run starts from a
    fresh store; refuse a folder that holds anything else. The project is written after."""
    from loopml.errors import UsageError

    if not dest.exists() or not any(dest.iterdir()):
        return False
    yaml = dest / "loopml.yaml"
    earlier = (dest / MARKER).exists() or (
        yaml.exists() and "time compressed for the demo" in yaml.read_text()
    )
    if not earlier:
        raise UsageError(
            f"{dest} is not empty and was not written by 'loopml demo', so the demo will not "
            "empty it. Choose another folder with --dir PATH."
        )
    shutil.rmtree(dest)
    return True


def loopml_command() -> str:
    """How to run ``loopml`` from this shell: on the PATH, else the full path beside Python."""
    found = shutil.which("loopml")
    beside = Path(sys.executable).parent / "loopml"
    if found and Path(found).resolve() == beside.resolve():
        return "loopml"
    return str(beside) if beside.exists() else "loopml"
