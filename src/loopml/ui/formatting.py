"""Jinja filters: how times, numbers and JSON look on a page (templates only format)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from loopml.display import number


def ts(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """UNIX seconds as a UTC time; blank for None."""
    if value is None or value == "":
        return ""
    try:
        return datetime.fromtimestamp(float(value), UTC).strftime(fmt) + " UTC"
    except (TypeError, ValueError, OverflowError, OSError):
        return str(value)


def pct(value: Any, digits: int = 1) -> str:
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    return f"{100 * value:.{digits}f}%"


def pretty(value: Any) -> str:
    """Evidence as indented JSON (for <pre> blocks)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


FILTERS = {"ts": ts, "num": number, "pct": pct, "pretty": pretty}
