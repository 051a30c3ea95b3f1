"""The windows still open: what a monitoring pass says of them (``provisional``) before they
close and are judged, counted from the parts and the live log segments and never stored; and
how a window is named in the pass's messages (``span``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopml.logs.parts import Part
from loopml.monitor.unreadable import count_rows

if TYPE_CHECKING:
    from loopml.monitor.jobs import Pass


def span(start: float, end: float) -> str:
    """'2024-03-01 14:00-15:00' (UTC); both dates when the window is longer than a day."""
    a, b = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    return (
        f"{a:%Y-%m-%d %H:%M}-{b:%H:%M}"
        if end - start <= 86400
        else f"{a:%Y-%m-%d %H:%M}-{b:%Y-%m-%d %H:%M}"
    )


def who(version: int, role: str) -> str:
    """'version 3, canary': whose rows a window message is about."""
    return f"version {version}, {role}"


def provisional(
    p: Pass, endpoint: str, by_window: dict[float, list[Part]], now: float
) -> list[dict[str, Any]]:
    """The windows still open (now before their end + grace), counted from the parts and the
    live segments, never stored: what each (version, role) has so far and what it waits for."""
    mon = p.cfg.monitor
    W, need = mon.window, mon.min_window_rows
    out = []
    for s, parts in by_window.items():
        e = s + W
        if e + mon.grace <= now:
            continue
        counts = count_rows(p, parts, s, e)
        for (version, role), rows in sorted(counts.items()):
            closes = e + mon.grace
            if rows < need:
                message = (
                    f"window {span(s, e)} ({who(version, role)}): {rows} rows of {need} needed"
                )
            else:
                message = (
                    f"window {span(s, e)} ({who(version, role)}): provisional, {rows} rows so "
                    f"far; judged when it closes at {datetime.fromtimestamp(closes, UTC):%H:%M}"
                )
            out.append(
                {
                    "start": s,
                    "end": e,
                    "closes_at": closes,
                    "version": version,
                    "role": role,
                    "rows": rows,
                    "needed": need,
                    "status": "waiting" if rows < need else "provisional",
                    "message": message,
                }
            )
    return out
