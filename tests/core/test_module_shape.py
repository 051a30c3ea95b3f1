"""The house rules a reader relies on (STYLE.md, issue 18): every module name is unique in
src/, and no function in train/ or control/ runs over 80 lines."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "loopml"
MAX_FUNCTION_LINES = 80


def test_module_names_are_unique() -> None:
    """Guards against a second report.py / registry.py: a name that says nothing in the tree."""
    names = Counter(p.name for p in SRC.rglob("*.py") if p.name != "__init__.py")
    assert [n for n, c in names.items() if c > 1] == []


def test_no_long_functions_in_train_and_control() -> None:
    """Guards against functions that grow past one screen in the pipeline and the controller."""
    long = []
    for folder in ("train", "control"):
        for path in sorted((SRC / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({lines})")
    assert long == []
