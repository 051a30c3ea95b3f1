"""How a value is shown to people, the same on a dashboard page, in a report, a model card,
its Markdown and a CLI table."""

from __future__ import annotations

import math
from typing import Any


def number(value: Any, digits: int = 3) -> str:
    """``value`` as text: '-' for missing or not finite, yes/no for a boolean, whole numbers
    with thousands separators, other numbers with ``digits`` significant digits (scientific
    notation from a million up and below 0.001); anything else as ``str``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if not isinstance(value, float):
        return str(value)
    if not math.isfinite(value):
        return "-"
    if value != 0 and (abs(value) >= 10**6 or abs(value) < 10**-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:,.0f}"
