"""Small pieces the page builders share: time arguments, links, JSON-safe values."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from loopml.errors import UsageError
from loopml.store.rows import RefusedWindow, VersionRow

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def parse_time(value: str | float | None, field: str) -> float | None:
    """UNIX seconds from ``1709251200``, ``2024-03-01`` or ``2024-03-01T12:00`` (UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if _NUMBER.match(text):
        return float(text)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"'{field}' must be a time such as 2024-03-01, 2024-03-01T12:00 (UTC) or UNIX "
            f"seconds. Got {text[:40]!r}.",
            field=field,
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def parse_int(value: str | None, field: str, default: int, *, lo: int = 1, hi: int = 10_000) -> int:
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        raise UsageError(
            f"'{field}' must be a whole number. Got {value[:40]!r}.", field=field
        ) from None
    if not lo <= n <= hi:
        raise UsageError(f"'{field}' must be between {lo} and {hi}. Got {n}.", field=field)
    return n


def subject_link(subject: str | None) -> str | None:
    """The dashboard page of a decision's subject (``version:3``, ``endpoint:credit``)."""
    kind, _, ident = (subject or "").partition(":")
    if kind == "version" and ident.isdigit():
        return f"/versions/{ident}"
    if kind == "endpoint" and ident:
        return f"/endpoints/{ident}"
    return None


def version_brief(v: VersionRow) -> dict[str, Any]:
    return {
        "id": v["id"],
        "model": v["model"],
        "number": v["number"],
        "status": v["status"],
        "created_at": v["created_at"],
        "href": f"/versions/{v['id']}",
    }


def refused_summary(row: RefusedWindow | None) -> dict[str, Any] | None:
    """A ``monitor_refused`` row as the pages show it (None: nothing was refused)."""
    if row is None:
        return None
    keep = ("start", "end", "requests", "rows", "served", "share", "counts")
    return {k: v for k, v in row.items() if k in keep}
