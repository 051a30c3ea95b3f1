"""Mergeable sketches: a KLL quantile sketch and a HyperLogLog distinct-count sketch.

The quantile sketch wraps Apache DataSketches' KLL (``datasketches`` on PyPI), which takes a
whole numpy array per update in C++ and merges and serialises portably; its rank error is
stated by the library (Karnin, Lang & Liberty, "Optimal quantile approximation in streams",
FOCS 2016). For k=400 a single rank query is off by at most 0.68% of n with 99% confidence.

The HyperLogLog is written here (Flajolet et al., "HyperLogLog: the analysis of a near-optimal
cardinality estimation algorithm", 2007, with the small-range linear-counting correction of
Heule et al. 2013) because DataSketches' ``hll_sketch.update`` takes one item per call, and a
category column is better fed its distinct values (from Arrow's ``value_counts``) as one numpy
array: max-of-registers is idempotent, so hashing distinct values alone gives the same sketch
as hashing every row. Hashes come from ``pandas.util.hash_array`` (SipHash with a fixed key),
so registers are stable across processes and machines and therefore mergeable.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import datasketches
import numpy as np
import pandas as pd

DEFAULT_K = 400
HLL_P = 12  # 4096 registers: relative standard error 1.04 / sqrt(4096) = 1.6%


class QuantileSketch:
    """KLL sketch of a float column: ``update(values) -> self``, ``+`` merges into a new sketch."""

    def __init__(self, k: int = DEFAULT_K) -> None:
        self.k = k
        self._kll = datasketches.kll_doubles_sketch(k)

    @property
    def n(self) -> int:
        return int(self._kll.n)

    @property
    def rank_error(self) -> float:
        """Bound on |estimated rank - true rank| / n for one query, at 99% confidence."""
        return float(datasketches.kll_doubles_sketch.get_normalized_rank_error(self.k, False))

    def update(self, values: np.ndarray) -> QuantileSketch:
        """Add finite float64 values (NaN must already be removed; KLL ignores it anyway)."""
        if len(values):
            values = np.ascontiguousarray(values, dtype=np.float64)
            if not values.flags.writeable:  # the binding refuses read-only (e.g. Arrow) buffers
                values = values.copy()
            self._kll.update(values)
        return self

    def __add__(self, other: QuantileSketch) -> QuantileSketch:
        out = QuantileSketch.__new__(QuantileSketch)
        out.k = min(self.k, other.k)
        out._kll = copy.copy(self._kll)
        out._kll.merge(other._kll)
        return out

    def weighted_points(self) -> tuple[np.ndarray, np.ndarray]:
        """The retained items and their weights: a weighted sample standing in for the data.

        While the sketch has not compacted (n <= k) this is the data itself, exactly.
        """
        if self._kll.is_empty():
            return np.empty(0), np.empty(0)
        pairs = np.array(list(self._kll), dtype=np.float64)
        order = np.argsort(pairs[:, 0], kind="stable")
        return pairs[order, 0], pairs[order, 1]

    def quantiles(self, ranks: np.ndarray) -> np.ndarray:
        if self._kll.is_empty():
            return np.full(len(ranks), np.nan)
        return np.asarray(self._kll.get_quantiles(list(map(float, ranks))), dtype=np.float64)

    def cdf(self, points: np.ndarray) -> np.ndarray:
        """Estimated share of values strictly below each point (points increasing, unique)."""
        if self._kll.is_empty():
            return np.zeros(len(points))
        return np.asarray(self._kll.get_cdf(list(map(float, points))), dtype=np.float64)[:-1]

    def __getstate__(self) -> dict[str, object]:
        """Picklable (the datasketches object is not): profiles travel to engine workers."""
        return {"k": self.k, "kll": self._kll.serialize()}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.k = int(state["k"])  # type: ignore[call-overload]
        self._kll = datasketches.kll_doubles_sketch.deserialize(state["kll"])

    def to_str(self) -> str:
        return base64.b64encode(self._kll.serialize()).decode("ascii")

    @classmethod
    def from_str(cls, text: str, k: int = DEFAULT_K) -> QuantileSketch:
        out = cls.__new__(cls)
        out.k = k
        out._kll = datasketches.kll_doubles_sketch.deserialize(base64.b64decode(text))
        return out


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Vectorised int.bit_length for uint64, exact (each 32-bit half is exact in float64)."""
    hi = (x >> np.uint64(32)).astype(np.float64)
    lo = (x & np.uint64(0xFFFFFFFF)).astype(np.float64)
    return np.where(hi > 0, np.frexp(hi)[1] + 32, np.frexp(lo)[1])


class HyperLogLog:
    """Distinct-count sketch with 2**p one-byte registers; ``+`` is the register-wise max."""

    def __init__(self, p: int = HLL_P) -> None:
        self.p = p
        self.registers = np.zeros(1 << p, dtype=np.uint8)

    def update(self, values: Any) -> HyperLogLog:
        """Add values (any array-like of strings); duplicates cost nothing but their hashing."""
        arr = np.asarray(values, dtype=object)
        if len(arr) == 0:
            return self
        h = pd.util.hash_array(arr, categorize=False).astype(np.uint64)
        idx = (h >> np.uint64(64 - self.p)).astype(np.intp)
        rest = h << np.uint64(self.p)
        rho = np.minimum(64 - _bit_length(rest) + 1, 64 - self.p + 1).astype(np.uint8)
        np.maximum.at(self.registers, idx, rho)
        return self

    def __add__(self, other: HyperLogLog) -> HyperLogLog:
        if self.p != other.p:
            raise ValueError(
                f"cannot merge HyperLogLog sketches of precision {self.p} and {other.p}"
            )
        out = HyperLogLog(self.p)
        out.registers = np.maximum(self.registers, other.registers)
        return out

    @property
    def relative_error(self) -> float:
        """Relative standard error of the estimate, 1.04 / sqrt(m)."""
        return 1.04 / np.sqrt(len(self.registers))

    def estimate(self) -> float:
        m = len(self.registers)
        alpha = 0.7213 / (1 + 1.079 / m)
        raw = alpha * m * m / float(np.sum(np.ldexp(1.0, -self.registers.astype(np.int64))))
        zeros = int(np.count_nonzero(self.registers == 0))
        if raw <= 2.5 * m and zeros:
            return m * float(np.log(m / zeros))
        return raw

    def to_str(self) -> str:
        return base64.b64encode(self.registers.tobytes()).decode("ascii")

    @classmethod
    def from_str(cls, text: str) -> HyperLogLog:
        regs = np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy()
        out = cls(int(np.log2(len(regs))))
        out.registers = regs
        return out
