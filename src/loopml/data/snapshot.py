"""Content hashes of data sets, so a version's data can be proven later.

The hash covers column names, dtypes and every value (pandas' vectorised row hashing, then
SHA-256 over the row hashes): the same rows in the same order give the same hash whatever
file they came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Snapshot:
    hash: str
    source: str
    rows: int
    columns: list[dict[str, Any]]


def snapshot(frame: pd.DataFrame, source: str) -> Snapshot:
    h = hashlib.sha256()
    cols = [{"name": str(c), "dtype": str(t)} for c, t in frame.dtypes.items()]
    h.update(repr([(c["name"], c["dtype"]) for c in cols]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return Snapshot(hash=h.hexdigest(), source=source, rows=len(frame), columns=cols)
