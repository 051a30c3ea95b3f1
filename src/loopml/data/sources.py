"""Where training data comes from: a Parquet or CSV file (or folder of Parquet files), or a
Python callable ``module:function`` / ``file.py:function`` returning a DataFrame or Arrow
table. Also loads the user's own callables (the training function) the same way."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from loopml.data.dates import parse_date_columns
from loopml.errors import ConfigError, DataError

_FILE_SUFFIXES = {".parquet", ".pq", ".csv", ".tsv"}


def load_callable(spec: str, root: Path, *, what: str) -> Callable[..., Any]:
    """Import ``file.py:function`` (relative to ``root``) or ``package.module:function``."""
    if ":" not in spec:
        raise ConfigError(
            f"{what} must look like 'train.py:train' or 'package.module:function'. Got {spec!r}."
        )
    mod_part, fn_name = spec.rsplit(":", 1)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        if mod_part.endswith(".py"):
            path = (root / mod_part).resolve()
            if not path.exists():
                raise ConfigError(
                    f"{what}: file {path} does not exist. Check the path in loopml.yaml "
                    f"(it is relative to the project folder {root})."
                )
            name = f"loopml_user_{path.stem}_{abs(hash(str(path)))}"
            mod_spec = importlib.util.spec_from_file_location(name, path)
            assert mod_spec is not None and mod_spec.loader is not None
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[name] = module
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_part)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(
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
            raise DataError(
                f"{what}: the data function {spec} raised {type(e).__name__}: {e}.", field=what
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
