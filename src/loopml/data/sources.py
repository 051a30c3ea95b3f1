"""Where training data comes from: a Parquet or CSV file (or folder of Parquet files), or a
Python callable ``module:function`` / ``file.py:function`` returning a DataFrame or Arrow
table. Also loads the user's own callables (the training function) the same way."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import keyword
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from loopml.data.dates import parse_date_columns
from loopml.errors import ConfigError, DataError, TrainingError

_FILE_SUFFIXES = {".parquet", ".pq", ".csv", ".tsv"}


def add_project_path(root: Path) -> None:
    """Put the project folder first on ``sys.path``, so that the project's modules (and the
    classes a saved model names, ``train.MyModel``) import the same way in ``loopml run``,
    ``serve``, ``monitor`` and the controller's retraining."""
    folder = str(Path(root).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)


def module_name(path: Path, root: Path) -> str:
    """The stable import name of a project file: its path relative to the project folder,
    dotted (``train.py`` -> ``train``, ``models/ranker.py`` -> ``models.ranker``), which is
    also what ``import`` gives it with the folder on ``sys.path``, so a class defined there is
    saved under a name that the server can import. A file outside the project, or with path
    parts that are not identifiers, gets ``loopml_user_<stem>_<sha256 of its path>``: stable
    across runs (``hash()`` is not), though only importable in the process that loaded it."""
    try:
        parts = path.resolve().relative_to(Path(root).resolve()).with_suffix("").parts
    except ValueError:
        parts = ()
    if parts and all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        return ".".join(parts)
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", path.stem)
    return f"loopml_user_{stem}_{digest}"


def _exec_file(name: str, path: Path) -> Any:
    """Execute ``path`` afresh as module ``name`` (an edited train.py is read again)."""
    mod_spec = importlib.util.spec_from_file_location(name, path)
    assert mod_spec is not None and mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        mod_spec.loader.exec_module(module)
    except BaseException:
        if previous is not None:
            sys.modules[name] = previous
        else:
            sys.modules.pop(name, None)
        raise
    return module


def load_callable(spec: str, root: Path, *, what: str) -> Callable[..., Any]:
    """Import ``file.py:function`` (relative to ``root``) or ``package.module:function``."""
    if ":" not in spec:
        raise ConfigError(
            f"{what} must look like 'train.py:train' or 'package.module:function'. Got {spec!r}."
        )
    mod_part, fn_name = spec.rsplit(":", 1)
    add_project_path(root)
    try:
        if mod_part.endswith(".py"):
            path = (root / mod_part).resolve()
            if not path.exists():
                raise ConfigError(
                    f"{what}: file {path} does not exist. Check the path in loopml.yaml "
                    f"(it is relative to the project folder {root})."
                )
            module = _exec_file(module_name(path, root), path)
        else:
            module = importlib.import_module(mod_part)
    except ConfigError:
        raise
    except ModuleNotFoundError as e:
        raise ConfigError(
            f"{what}: importing {mod_part!r} failed: {e}. Check the name in loopml.yaml; project "
            f"modules are imported from the project folder {root}."
        ) from None
    except Exception as e:  # the user's module itself failed: a failure in user code (exit 3)
        raise TrainingError(
            f"{what}: importing {mod_part!r} failed: {type(e).__name__}: {e}. Fix the "
            f"module so that it imports on its own."
        ) from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        names = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
        raise ConfigError(
            f"{what}: {mod_part!r} has no function {fn_name!r}. Callables there: "
            f"{', '.join(names[:10]) or 'none'}."
        )
    return fn


def load_frame(spec: str, root: Path, *, what: str = "data.train") -> pd.DataFrame:
    """Read a data source into a DataFrame, with errors that name the source and the fix."""
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else root / path
    if path.suffix.lower() in _FILE_SUFFIXES or path.is_dir():
        if not path.exists():
            raise DataError(
                f"{what}: data file {path} does not exist. Check the path in loopml.yaml (relative "
                f"to the project folder {root}), or create the file.",
                field=what,
            )
        try:
            if path.is_dir() or path.suffix.lower() in (".parquet", ".pq"):
                frame = pd.read_parquet(path)
            else:
                frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
                # text has no types: date-like columns become dates, as in Parquet
                frame, _ = parse_date_columns(frame)
        except Exception as e:
            raise DataError(
                f"{what}: cannot read {path}: {type(e).__name__}: {e}. Is it a valid "
                f"{path.suffix.lstrip('.') or 'Parquet'} file?",
                field=what,
            ) from None
    elif ":" in spec:
        fn = load_callable(spec, root, what=what)
        try:
            out = fn()
        except Exception as e:
            raise TrainingError(
                f"{what}: the data function {spec} raised {type(e).__name__}: {e}. Fix it and "
                "run again."
            ) from None
        frame = out.to_pandas() if hasattr(out, "to_pandas") else out
        if not isinstance(frame, pd.DataFrame):
            raise DataError(
                f"{what}: {spec} returned {type(out).__name__}; it must return a pandas "
                f"DataFrame or a pyarrow Table.",
                field=what,
            )
    else:
        raise ConfigError(
            f"{what}: {spec!r} is neither a .parquet/.csv path nor a 'module:function'."
        )
    if frame.empty:
        raise DataError(f"{what}: {spec} has no rows.", field=what)
    return frame
