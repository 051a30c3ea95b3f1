"""A bounded uniform sample of rows, kept with a profile for multivariate drift.

Column profiles cannot show a change in how columns move together (a correlation that flips
keeps every marginal as it was), so a profile also keeps up to ``k`` whole rows, and the
monitor runs the domain classifier (``multivariate.py``) on the reference's rows against a
window's. The sample is a *bottom-k* sample (Cohen & Kaplan, "Summarizing data using bottom-k
sketches", PODC 2007): every row gets a key, a hash of its position, and the sample is the
k rows with the smallest keys. That is a uniform sample without replacement, updated a batch
at a time with numpy (no loop over rows), and two samples merge by keeping the k smallest keys
of both, so it follows the profiles' ``update`` / ``+`` protocol. Keys hash the row's position
(splitmix64, Steele et al. 2014), not a random draw, so a wide Parquet file read in several
passes over groups of columns (``DatasetProfile.from_parquet``) picks the same rows in every
pass. Values are stored as float64 (numeric columns) or text (categorical ones).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

DEFAULT_SAMPLE_ROWS = 2_000
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def position_keys(start: int, n: int, seed: int = 0) -> np.ndarray:
    """Uniform keys in [0, 1) for row positions start .. start + n - 1 (splitmix64)."""
    with np.errstate(over="ignore"):
        z = np.arange(start, start + n, dtype=np.uint64) + np.uint64(seed + 1) * np.uint64(
            0x9E3779B97F4A7C15
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def smallest(keys: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest keys, in key order."""
    idx = np.argpartition(keys, k - 1)[:k] if len(keys) > k else np.arange(len(keys))
    return idx[np.argsort(keys[idx], kind="stable")]


class RowSample:
    """Up to ``k`` rows chosen uniformly from all rows seen; ``update``, ``+``, ``to_dict``."""

    def __init__(self, k: int = DEFAULT_SAMPLE_ROWS, seed: int = 0) -> None:
        self.k = k
        self.seed = seed
        self.seen = 0
        self.keys = np.empty(0, dtype=np.float64)
        self.columns: dict[str, pa.Array] = {}

    @property
    def n(self) -> int:
        return len(self.keys)

    def threshold(self) -> float:
        return float(self.keys[-1]) if self.n >= self.k else np.inf

    def candidates(self, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions within the next batch of ``n_rows`` rows that may enter, their keys)."""
        keys = position_keys(self.seen, n_rows, self.seed)
        pos = np.flatnonzero(keys < self.threshold())
        if len(pos) > self.k:
            pos = np.sort(pos[smallest(keys[pos], self.k)])
        return pos, keys[pos]

    def add(self, n_rows: int, keys: np.ndarray, columns: dict[str, pa.Array]) -> RowSample:
        """Add a batch's candidate rows (from ``candidates``) and count its ``n_rows`` rows."""
        self.seen += n_rows
        return self._merge_in(keys, columns)

    def _merge_in(self, keys: np.ndarray, columns: dict[str, pa.Array]) -> RowSample:
        if len(keys) == 0:
            return self
        names = list(dict.fromkeys([*self.columns, *columns]))
        merged = {}
        for name in names:
            old = self.columns.get(name)
            new = columns.get(name)
            kind = old.type if old is not None else new.type  # type: ignore[union-attr]
            old = old if old is not None else pa.nulls(self.n, kind)
            new = new if new is not None else pa.nulls(len(keys), kind)
            merged[name] = pa.concat_arrays([old, new.cast(kind)])
        all_keys = np.concatenate([self.keys, keys])
        keep = smallest(all_keys, self.k)
        idx = pa.array(keep)
        self.keys = all_keys[keep]
        self.columns = {name: arr.take(idx) for name, arr in merged.items()}
        return self

    def __add__(self, other: RowSample) -> RowSample:
        out = RowSample(max(self.k, other.k), self.seed)
        out.seen = self.seen
        out.keys, out.columns = self.keys.copy(), dict(self.columns)
        out._merge_in(other.keys, other.columns)
        out.seen = self.seen + other.seen
        return out

    def to_pandas(self) -> pd.DataFrame:
        return pa.table(self.columns).to_pandas() if self.columns else pd.DataFrame()

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "seed": self.seed,
            "seen": self.seen,
            "keys": self.keys.tolist(),
            "columns": {
                name: {
                    "kind": "numeric" if pa.types.is_floating(arr.type) else "categorical",
                    "values": [
                        None if isinstance(v, float) and not np.isfinite(v) else v
                        for v in arr.to_pylist()
                    ],
                }
                for name, arr in self.columns.items()
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RowSample:
        out = cls(int(d["k"]), int(d.get("seed", 0)))
        out.seen = int(d["seen"])
        out.keys = np.asarray(d["keys"], dtype=np.float64)
        out.columns = {
            name: pa.array(c["values"], pa.float64() if c["kind"] == "numeric" else pa.string())
            for name, c in d["columns"].items()
        }
        return out
