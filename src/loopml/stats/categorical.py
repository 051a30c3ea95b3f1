"""Mergeable profile of a categorical column: exact counts up to a cap, then ``__other__``.

Counting is Arrow's ``value_counts``, which reads dictionary-encoded columns on their codes
without decoding them; a HyperLogLog (``sketch.py``) estimates the distinct count once levels
were folded into ``__other__`` (exact while under the cap).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loopml.stats.sketch import HyperLogLog

OTHER = "__other__"
DEFAULT_CAP = 1000


class CategoricalProfile:
    """Profile of a categorical column: exact counts up to ``cap`` levels, then ``__other__``."""

    kind = "categorical"

    def __init__(self, cap: int = DEFAULT_CAP, *, dtype: str | None = None) -> None:
        self.cap = cap
        self.dtype = dtype
        self.count = 0
        self.nulls = 0
        self.counts: dict[str, int] = {}
        self.other = 0
        self.hll = HyperLogLog()

    def empty_like(self, *, sketch: bool | None = None) -> CategoricalProfile:
        """An empty profile with the same cap (``sketch`` is accepted for symmetry, unused)."""
        return CategoricalProfile(self.cap)

    def update(self, values: Any) -> CategoricalProfile:
        """Add an Arrow array (or anything ``pa.array`` accepts); values are compared as strings."""
        arr = (
            values
            if isinstance(values, pa.Array | pa.ChunkedArray)
            else pa.array(values, from_pandas=True)
        )
        if isinstance(arr, pa.ChunkedArray):
            for chunk in arr.chunks:
                self.update(chunk)
            return self
        value_type = arr.type.value_type if pa.types.is_dictionary(arr.type) else arr.type
        if not (pa.types.is_string(value_type) or pa.types.is_large_string(value_type)):
            if pa.types.is_dictionary(arr.type):
                arr = arr.dictionary_decode()
            arr = pc.cast(arr, pa.string())
        self.nulls += arr.null_count
        self.count += len(arr) - arr.null_count
        vc = pc.value_counts(arr)  # dictionary arrays are counted on their indices
        keys = vc.field("values").to_pylist()
        counts = self.counts
        new = [k for k in keys if k is not None and k not in counts]
        if new:  # max-of-registers is idempotent: a level needs hashing once, when first seen
            self.hll.update(new)
        for key, c in zip(keys, vc.field("counts").to_numpy().tolist(), strict=True):
            if key is not None:
                counts[key] = counts.get(key, 0) + c
        self._fold()
        return self

    def _fold(self) -> None:
        if len(self.counts) <= self.cap:
            return
        # Keep the most frequent levels (ties broken by name, so the result is deterministic).
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        self.counts = dict(ranked[: self.cap])
        self.other += sum(c for _, c in ranked[self.cap :])

    def __add__(self, other: CategoricalProfile) -> CategoricalProfile:
        if not isinstance(other, CategoricalProfile):
            return NotImplemented
        out = CategoricalProfile(min(self.cap, other.cap), dtype=self.dtype or other.dtype)
        out.count, out.nulls = self.count + other.count, self.nulls + other.nulls
        out.counts = dict(self.counts)
        for key, c in other.counts.items():
            out.counts[key] = out.counts.get(key, 0) + c
        out.other = self.other + other.other
        out.hll = self.hll + other.hll
        out._fold()
        return out

    @property
    def distinct(self) -> float:
        """Distinct non-null values: exact while no level was folded into ``__other__``."""
        return (
            float(len(self.counts))
            if self.other == 0
            else max(self.hll.estimate(), float(len(self.counts)))
        )

    def frequencies(self) -> dict[str, int]:
        """Counts per level, with the ``__other__`` bucket when it is not empty."""
        out = dict(self.counts)
        if self.other:
            out[OTHER] = out.get(OTHER, 0) + self.other
        return out

    def get(self) -> dict[str, Any]:
        top = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
        return {
            "kind": self.kind,
            "count": self.count,
            "nulls": self.nulls,
            "distinct": self.distinct,
            "exact_distinct": self.other == 0,
            "top": dict(top),
            "other": self.other,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dtype": self.dtype,
            "cap": self.cap,
            "count": self.count,
            "nulls": self.nulls,
            "counts": self.counts,
            "other": self.other,
            "hll": self.hll.to_str(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoricalProfile:
        out = cls(d["cap"], dtype=d.get("dtype"))
        out.count, out.nulls, out.other = d["count"], d["nulls"], d["other"]
        out.counts = {str(k): int(v) for k, v in d["counts"].items()}
        out.hll = HyperLogLog.from_str(d["hll"])
        return out
