"""Values as plain JSON types, the one conversion used wherever loopml stores or shows JSON.

NumPy scalars and arrays become Python numbers and lists, tuples become lists, mapping keys
become strings, and NaN and infinities become ``None``: strict JSON (and Postgres's JSON type)
has no NaN, and a page or a stored verdict shows a missing number, not a broken one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """``value`` with every nested NumPy value, tuple and non-finite float made JSON-safe."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
