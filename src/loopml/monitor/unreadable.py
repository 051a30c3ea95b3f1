"""Reading a window's parts: a live segment's rows with every column (``whole_parts``), and
Parquet parts when one of them is damaged: the scan fails, each of its parts is read whole
once to find which cannot be (``LogFiles.damaged``), and the window is scanned again without
them. A damaged part is a finding of its window (issue 14), never a crash of the pass, and no
row of another part is lost."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from loopml.logs.layout import PREDICTIONS
from loopml.logs.parts import Part, table_part
from loopml.monitor.blocks import scan_blocks
from loopml.monitor.windows import scan

if TYPE_CHECKING:
    from loopml.monitor.jobs import Pass


def whole_parts(p: Pass, endpoint: str, parts: list[Part], s: float, e: float) -> list[Part] | None:
    """A window's parts with every column: a live segment's part (its reserved columns only,
    ``Pass.live``) replaced by its rows in the window, decoded now and not kept; None when a
    segment was compacted since the pass listed it (its part files are listed by the next
    pass)."""
    out = []
    for q in parts:
        if q.table is None or p.segments is None:
            out.append(q)
            continue
        token = q.path.removeprefix("live:")
        rows = p.segments.window(PREDICTIONS, endpoint, token, s, e)
        if rows is None:
            return None
        if rows.num_rows:
            out.append(table_part(token, rows))
    return out


def scan_window(
    p: Pass, parts: list[Part], s: float, e: float, labels: pa.Table | None, *, profiles: bool
) -> tuple[dict[tuple[int, str], Any], dict[str, str]]:
    """The window's groups, and the Parquet parts skipped as unreadable (path -> why): a corrupt
    part is a finding of its window, the other parts are still read (issue 14)."""
    bad: dict[str, str] = {}
    while True:
        good = [q for q in parts if q.path not in bad]
        if not good:
            return {}, bad
        try:
            return _scan(p, good, s, e, labels, profiles), bad
        except (OSError, ValueError, pa.ArrowException):
            found = {
                q.path: why for q in good if q.table is None and (why := p.logs.damaged(q.path))
            }
            if not found:
                raise  # not a damaged part: a real failure, reported as such
            bad.update(found)


def _scan(
    p: Pass, parts: list[Part], s: float, e: float, labels: pa.Table | None, profiles: bool
) -> dict[tuple[int, str], Any]:
    files = all(part.table is None for part in parts)  # live segments: scanned here
    if p.engine is None or p.engine.name == "local" or not files:
        return scan(p.logs, parts, s, e, p.ref_of, p.cfg, labels, profiles=profiles)
    # blocks of parts on the engine's workers, merged here (monitor.blocks)
    return scan_blocks(
        p.engine,
        p.logs,
        p.logs.where,
        parts,
        s,
        e,
        p.ref_of,
        p.cfg,
        labels,
        profiles=profiles,
    )


def count_rows(p: Pass, parts: list[Part], s: float, e: float) -> dict[tuple[int, str], int]:
    """Rows per (version, role) of an open window; unreadable parts skipped (and remembered)."""
    while True:
        parts = [q for q in parts if q.path not in p.logs.corrupt]
        counts: dict[tuple[int, str], int] = {}
        try:
            for batch in p.logs.batches(parts, s, e, ["_version", "_role"]):
                t = pa.table({"v": batch.column("_version"), "r": batch.column("_role")})
                for row in t.group_by(["v", "r"]).aggregate([([], "count_all")]).to_pylist():
                    key = (int(row["v"]), str(row["r"]))
                    counts[key] = counts.get(key, 0) + int(row["count_all"])
            return counts
        except (OSError, ValueError, pa.ArrowException):
            if not [q for q in parts if q.table is None and p.logs.damaged(q.path)]:
                raise
