"""The building blocks of the config models: the ``Section`` base (an unknown key is an error)
and durations ('1h', '30m', '90d' or plain seconds)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> float:
    """'90d' -> seconds. Plain non-negative numbers are taken as seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration such as '1h', '30m' or '90d'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a non-negative duration such as '1h', '30m' or '90d'")
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError("a duration such as '1h', '30m' or '90d'")
    return float(m.group(1)) * _UNITS[m.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
