"""What changed since this process's last monitoring pass: the windows a pass must look at.

``loopml serve`` runs a pass every ``monitor.schedule`` for months. Were every closed window
checked each time (its label parts listed and their footers compared, its refused counts and
served rows read again), a pass would cost in proportion to the time served, not to the
traffic since the last pass. Parts are immutable (``logs.compaction`` writes a part whole and
names it after its segment; a rewrite changes its size or stamp) and a live segment is known
by a token that changes as it grows, so the inputs of a closed window can change only when a
part not seen at the last pass meets it, or when it closed since. ``Seen`` keeps, per
endpoint, log kind and monitor settings, the parts of the last *successful* pass and the
windows closed then. The first pass of a process (``loopml monitor`` from cron, a restarted
server) has nothing kept and looks at every window, as every pass did before. A window picked
is still compared with the fingerprints stored with it, so a picked window whose inputs did
not change is only counted as unchanged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from loopml.config import Config
from loopml.logs.layout import id_floor, is_uuid7, log_location
from loopml.logs.parts import Part


@dataclass(frozen=True)
class Seen:
    """The parts (keys) of the last successful pass and the windows closed then."""

    parts: frozenset[str]
    closed: frozenset[float]


log = logging.getLogger("loopml.serve")  # the background process's handover lines
_SEEN: dict[tuple[object, ...], Seen] = {}
_LOCK = threading.Lock()


def memo_key(cfg: Config, endpoint: str, kind: str) -> tuple[object, ...]:
    mon = cfg.monitor
    where = log_location(cfg)
    return (
        where.root,
        where.spool,
        cfg.store_url,
        endpoint,
        kind,
        mon.window,
        mon.grace,
        mon.labels_within,
    )


def last(key: tuple[object, ...]) -> Seen | None:
    with _LOCK:
        return _SEEN.get(key)


def remember(key: tuple[object, ...], parts: Iterable[str], closed: Iterable[float]) -> None:
    """Called once the pass over this endpoint succeeded (a failed pass keeps the old)."""
    with _LOCK:
        _SEEN[key] = Seen(frozenset(parts), frozenset(closed))


def forget() -> None:
    """Drop everything kept (the next pass looks at every window)."""
    with _LOCK:
        _SEEN.clear()


def export() -> list[list[object]]:
    """What is kept, as JSON values: handed to the process that takes over from this one
    (``background_worker``), whose first pass then looks only at what changed."""
    with _LOCK:
        return [[list(k), sorted(v.parts), sorted(v.closed)] for k, v in _SEEN.items()]


def restore(items: list[list[object]]) -> None:
    """Keep what :func:`export` gave (another process's last successful passes)."""
    with _LOCK:
        for key, parts, closed in items:
            _SEEN[tuple(key)] = Seen(frozenset(parts), frozenset(closed))  # type: ignore[call-overload, arg-type]


def save(path: str) -> None:
    """Write what is kept (:func:`export`) to ``path``, for the process that takes over;
    a failure is a warning (that process's first pass then looks at every window)."""
    try:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump({"memo": export()}, f)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("Could not write the handover for the next background process: %s", exc)


def load(path: str) -> None:
    """Keep what :func:`save` wrote to ``path`` (the previous process's), if it did, and
    remove the file."""
    try:
        with open(path, "rb") as f:
            restore(json.loads(f.read())["memo"])
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError) as exc:  # its first pass looks at all
        log.warning("Could not read the previous background process's handover: %s", exc)
    with contextlib.suppress(OSError):
        os.unlink(path)


def key_of(part: Part | tuple[str, int]) -> str:
    """A part's key: path and size (a live segment's path holds its token)."""
    path, size = (part.path, part.size) if isinstance(part, Part) else part
    return f"{path}:{size}"


def windows_of(parts: list[Part], window: float) -> dict[float, list[Part]]:
    """Window start -> the parts whose window-time range meets that window."""
    out: dict[float, list[Part]] = {}
    for p in parts:
        for k in range(math.floor(p.lo / window), math.floor(p.hi / window) + 1):
            out.setdefault(float(k * window), []).append(p)
    return dict(sorted(out.items()))


def log_span(parts: Sequence[Part], start: float, end: float) -> tuple[float, float]:
    """The log-time span of a window's rows (what request ids and label arrival follow):
    the window itself, or with event times the log times of the parts that hold it."""
    if any(q.event_time for q in parts):
        return min(q.ts_lo for q in parts), max(q.ts_hi for q in parts) + 0.001
    return start, end


def touched(
    before: Seen,
    closed: Sequence[float],
    by_window: dict[float, list[Part]],
    window: float,
    new_parts: Sequence[Part],
    new_ids: Sequence[tuple[object, object] | None],
) -> list[float]:
    """The closed windows to look at: closed since ``before``, met by a new part (window
    time), or whose request ids a new label part's id range may hold (``None``: a range
    unknown, or of ids not ordered by time, which may label any window)."""
    dirty = windows_of(list(new_parts), window).keys()
    ordered = [r for r in new_ids if r is not None and is_uuid7(r[0]) and is_uuid7(r[1])]
    anywhere = len(ordered) < len(new_ids)
    out = []
    for s in closed:
        if s not in before.closed or s in dirty or anywhere:
            out.append(s)
            continue
        lo, hi = log_span(by_window[s], s, s + window)
        a, b = id_floor(lo), id_floor(hi)
        if any(r[1] >= a and r[0] < b for r in ordered):  # type: ignore[operator]
            out.append(s)
    return out
