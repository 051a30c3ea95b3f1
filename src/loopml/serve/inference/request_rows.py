"""The validated request rows that travel from validation to the model and the log.

A :class:`~loopml.serve.wire.validation.Validator` makes one :class:`Batch` per request; the
micro-batcher stacks the batches of concurrent requests with :meth:`Batch.concat`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class Batch:
    """Validated rows: one NumPy array per signature column, in signature order.

    ``block`` is set for all-float signatures: a (columns, rows) float64 array whose rows
    are the columns (so no copy is needed for the DataFrame or the log). ``flags`` is
    ``None`` or an object array with, per row, ``None`` or a comma-separated list such as
    ``"unseen:city"`` for the prediction log. ``logged`` caches the rows (and the request's
    context columns) as the log encodes them.
    """

    __slots__ = ("_columns", "block", "flags", "logged", "n", "names")

    def __init__(
        self,
        columns: dict[str, np.ndarray] | None,
        n: int,
        flags: np.ndarray | None = None,
        *,
        block: np.ndarray | None = None,
        names: Sequence[str] = (),
    ) -> None:
        self._columns = columns
        self.n = n
        self.flags = flags
        self.block = block
        self.names = tuple(columns) if columns is not None else tuple(names)
        # the rows as the prediction log writes them, encoded once for all of a request's
        # records (its answer's, its shadows' and the champion's paired one)
        self.logged: Any = None

    @property
    def columns(self) -> dict[str, np.ndarray]:
        if self._columns is None:
            assert self.block is not None
            self._columns = dict(zip(self.names, self.block, strict=True))
        return self._columns

    @staticmethod
    def concat(batches: Sequence[Batch]) -> Batch:
        """Stack batches validated by the same validator (for micro-batching)."""
        if len(batches) == 1:
            return batches[0]
        n = sum(b.n for b in batches)
        flags = None
        if any(b.flags is not None for b in batches):
            flags = np.concatenate(
                [b.flags if b.flags is not None else np.full(b.n, None, object) for b in batches]
            )
        if all(b.block is not None for b in batches):
            block = np.concatenate([b.block for b in batches if b.block is not None], axis=1)
            return Batch(None, n, flags, block=block, names=batches[0].names)
        names = batches[0].names
        columns = {k: np.concatenate([b.columns[k] for b in batches]) for k in names}
        return Batch(columns, n, flags)


def join_flags(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row flags of ``a`` and ``b`` together (``None`` where neither has one)."""
    out = a.copy()
    for i in np.flatnonzero(b != None):  # noqa: E711 - only rows flagged twice
        out[i] = b[i] if a[i] is None else f"{a[i]},{b[i]}"
    return out
