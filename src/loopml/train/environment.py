"""What a run records about where it ran: git commit and dirty flag, Python and package
versions, CPU time and peak memory."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import resource
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

TRACKED = (
    "loopml",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "scipy",
    "skops",
    "lightgbm",
    "xgboost",
    "onnxruntime",
)


def git_state(root: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the repository holding ``root``, or (None, None) outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None, None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return commit.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def packages() -> dict[str, str]:
    out = {}
    for name in TRACKED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def python_version() -> str:
    return platform.python_version()


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


#: folders never read for code lineage (stores, environments, caches, version control)
SKIP_DIRS = {".loopml", ".git", ".venv", "venv", "env", "__pycache__", "node_modules", ".tox"}
MAX_FILES = 200


def code_lineage(root: Path, entry_point: str) -> dict[str, Any]:
    """What trained the model when git cannot say (no repository, or uncommitted files): the
    training entry point and the sha256 of each Python file of the project folder (relative
    paths, sorted; at most ``MAX_FILES``, skipping stores, virtualenvs and caches)."""
    files: dict[str, str] = {}
    root = Path(root)
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(names):
            if not name.endswith(".py"):
                continue
            path = Path(folder) / name
            if len(files) >= MAX_FILES:
                return {"entry_point": entry_point, "files": files, "truncated": True}
            with contextlib.suppress(OSError):
                rel = path.relative_to(root).as_posix()
                files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"entry_point": entry_point, "files": files}
