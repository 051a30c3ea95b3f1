"""Date-like text columns read as dates.

A CSV has no types, so a column of ``2014-07-01`` or ``2013-08-14 06:03:42`` arrives as text.
Read as text it would be a model feature (init says date columns are not), a time split could
not take its quantile, and ``data.test_from`` could not be compared with it. Columns whose every
non-missing value is an ISO-8601 date or date-time (``YYYY-MM-DD``, optionally with a time and
a UTC offset) or a slash date (``YYYY/MM/DD``, ``MM/DD/YYYY``) become ``datetime64``, exactly as
a Parquet timestamp column would be. Anything else stays text: a single value that is not a
date keeps the column as it is (no silent NaT).
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

import pandas as pd

_ISO = r"\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?"
PATTERNS = {
    "ISO8601": re.compile(rf"^{_ISO}$"),
    "%Y/%m/%d": re.compile(r"^\d{4}/\d{1,2}/\d{1,2}$"),
    "%m/%d/%Y": re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$"),
}


def _text(column: pd.Series) -> bool:
    return bool(
        pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)
    ) and not pd.api.types.is_bool_dtype(column)


def parse_dates(column: pd.Series) -> pd.Series | None:
    """``column`` as datetimes when every non-missing value is date-like text, else ``None``."""
    if not _text(column):
        return None
    values = column.dropna()
    if values.empty or not all(isinstance(v, str) for v in values.head(50)):
        return None
    values = values.astype(str).str.strip()
    for fmt, pattern in PATTERNS.items():
        if not pattern.match(values.iloc[0]) or not values.str.fullmatch(pattern).all():
            continue
        offset = fmt == "ISO8601" and bool(values.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$").any())
        try:
            parsed = pd.to_datetime(column, format=fmt, utc=offset, errors="raise")
        except (ValueError, TypeError, OverflowError):
            if fmt != "%m/%d/%Y":
                return None
            try:  # day first: 31/12/2024
                parsed = pd.to_datetime(column, format="%d/%m/%Y", errors="raise")
            except (ValueError, TypeError, OverflowError):
                return None
        if offset:  # one clock for all rows: UTC, without the zone (as a naive Parquet time)
            parsed = parsed.dt.tz_convert(None)
        return parsed
    return None


def parse_date_columns(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with its date-like text columns as datetimes, and their names."""
    parsed: dict[Any, pd.Series] = {}
    for name in frame.columns:
        out = parse_dates(frame[name])
        if out is not None:
            parsed[name] = out
    if not parsed:
        return frame, []
    frame = frame.copy()
    for name, values in parsed.items():
        frame[name] = values
    return frame, list(parsed)


def as_time_value(value: Any, column: pd.Series, key: str) -> Any:
    """A bound from loopml.yaml (``data.test_from``) as a value comparable with ``column``:
    a timestamp for a date column (YAML reads an unquoted ``2014-07-01`` as a date, a quoted
    one as text; both work), a number for a numeric column. Raises ``ValueError`` with what
    was expected."""
    if pd.api.types.is_datetime64_any_dtype(column):
        if isinstance(value, bool) or not isinstance(value, str | _dt.date | pd.Timestamp):
            raise ValueError(f"a date such as '2014-07-01' (the column holds dates); got {value!r}")
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError):
            raise ValueError(
                f"a date such as '2014-07-01' (the column holds dates); got {value!r}"
            ) from None
        tz = getattr(column.dtype, "tz", None)
        if tz is not None and stamp.tzinfo is None:
            stamp = stamp.tz_localize(tz)
        elif tz is None and stamp.tzinfo is not None:
            stamp = stamp.tz_convert(None)
        return stamp
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise ValueError(
                    f"a number (the column holds numbers, e.g. {column.iloc[0]!r}); got {value!r}"
                ) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"a number (the column holds numbers); got {value!r}")
        return value
    return value if isinstance(value, str) else str(value)
