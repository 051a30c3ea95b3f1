"""A window's scan split into blocks of Parquet parts, run on an engine, merged on the driver.

Every piece a window accumulates per (version, role) merges: profiles with ``+`` (both blocks
binned on the reference's edges), the latency sketch with ``+``, counters and sums by adding,
the labelled rows by concatenating in block order. So the merged groups equal the groups of one
scan over all parts: counts exactly, floating sums up to rounding (summed in another order).
Windows whose versions lack a reference profile are scanned in one piece (their bin edges come
from the first batch, which blocks would not share).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as ds

from loopml.config import Config
from loopml.engines import Engine
from loopml.logs.layout import LogLocation
from loopml.logs.logfiles import LogFiles
from loopml.logs.parts import Part
from loopml.monitor.estimation import BinaryEstimate, MulticlassEstimate
from loopml.monitor.reference import Reference
from loopml.monitor.windows import Group, scan

Groups = dict[tuple[int, str], Group]


def merge_group(a: Group, b: Group) -> Group:
    """``a`` with ``b`` added (``a`` is updated and returned)."""
    a.rows += b.rows
    if b.features is not None:
        a.features = b.features if a.features is None else a.features + b.features
    if b.outputs is not None:
        a.outputs = b.outputs if a.outputs is None else a.outputs + b.outputs
    a.latency = a.latency + b.latency
    a.flags.update(b.flags)
    a.errors += b.errors
    if isinstance(a.estimate, BinaryEstimate) and isinstance(b.estimate, BinaryEstimate):
        a.estimate = a.estimate + b.estimate
    elif isinstance(a.estimate, MulticlassEstimate) and isinstance(b.estimate, MulticlassEstimate):
        a.estimate.n += b.estimate.n
        a.estimate.sum_top += b.estimate.sum_top
    for key, (n, s) in b.perf.selection.items():
        cell = a.perf.selection.setdefault(key, [0, 0])
        cell[0] += n
        cell[1] += s
    for name, arrays in b.perf.parts.items():
        a.perf.parts[name].extend(arrays)
    for name, arrays in b.perf.slice_parts.items():
        a.perf.slice_parts.setdefault(name, []).extend(arrays)
    return a


def merge_groups(total: Groups, part: Groups) -> Groups:
    for key, g in part.items():
        total[key] = g if key not in total else merge_group(total[key], g)
    return total


def _scan_block(parts: list[Part], shared: tuple[Any, ...]) -> Groups:
    """One block's groups (runs on the engine's workers)."""
    root, start, end, refs, cfg, labels, profiles = shared
    groups = scan(LogFiles(root), parts, start, end, refs.get, cfg, labels, profiles=profiles)
    for g in groups.values():
        g.ref = None  # the driver has it; do not ship it back
    return groups


def scan_blocks(
    engine: Engine,
    logs: LogFiles,
    root: LogLocation | str,
    parts: Sequence[Part],
    start: float,
    end: float,
    ref_of: Callable[[int], Reference | None],
    cfg: Config,
    labels: Any,
    *,
    profiles: bool = True,
) -> Groups:
    """:func:`loopml.monitor.windows.scan` of ``parts`` (Parquet files), one block per part,
    on ``engine``."""
    versions: set[int] = set()  # streamed: one column, a batch at a time
    paths = [p.path for p in parts]
    dataset = ds.dataset(paths, format="parquet", filesystem=logs.arrow_fs)
    for batch in dataset.to_batches(columns=["_version"]):
        versions.update(int(v) for v in pc.unique(batch.column(0)).to_pylist() if v is not None)
    refs = {v: ref_of(v) for v in versions}
    if len(paths) < 2 or any(
        r is None or r.features is None or r.outputs is None for r in refs.values()
    ):
        return scan(logs, parts, start, end, ref_of, cfg, labels, profiles=profiles)
    shared = (root, start, end, refs, cfg, labels, profiles)
    total: Groups = {}
    for part in engine.map(_scan_block, [[p] for p in parts], shared=shared):
        merge_groups(total, part)
    for (v, _), g in total.items():
        g.ref = refs[v]
    return total
