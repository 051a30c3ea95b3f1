"""Bench (not collected by pytest): one controller pass over a rollout whose log holds many
compacted parts, with the parts read by earlier passes kept (``Context.parts``) and without
(every part read each pass, as before ``loopml.logs.partcache``). The log is written by
``PredictionLog`` and compacted, one part per segment; the rollout stays in shadow throughout
(no pass moves it). Times are CPU seconds of this process (every thread).

    .venv/bin/python -m tests.control.bench_rollout_pass     # 50 parts of 2 x 2000 rows
    .venv/bin/python -m tests.control.bench_rollout_pass --parts 100 --rows 1000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from loopml.config import Config
from loopml.control import rollout
from loopml.control.context import Context
from loopml.control.samples import read_label_map, read_rows
from loopml.logs.compaction import compact
from loopml.logs.layout import log_location
from loopml.logs.partcache import PartCache
from loopml.logs.predlog import PredictionLog
from loopml.serve.wire.ids import new_request_ids
from loopml.store import Store
from tests.control._log import make_config, register


def _segment(cfg: Config, champ: int, cand: int, t0: float, t1: float, rows: int) -> None:
    """``rows`` mirrored requests of 50 rows (champion and shadow answers, labels) logged in
    [t0, t1) by one writer, then compacted into parts."""
    rng = np.random.default_rng(int(t0))
    with PredictionLog(log_location(cfg)) as log:
        for k in range(0, rows, 50):
            ids = new_request_ids(50)
            ts = int((t0 + (t1 - t0) * k / rows) * 1e6)
            feats = {f"x{i}": rng.normal(size=50) for i in range(8)}
            same = {"endpoint": "ep", "request_ids": ids, "features": feats, "ts_us": ts}
            y = rng.integers(0, 2, 50)
            for version, role in ((champ, "champion"), (cand, "shadow")):
                p = np.where(rng.random(50) < 0.9, y, 1 - y)
                proba = np.column_stack([1.0 - p * 0.8 - 0.1, p * 0.8 + 0.1])
                log.log_predictions_sync(
                    version=version, role=role, predictions=p, probabilities=proba, **same
                )
            asyncio.run(log.log_labels(dict(zip(ids, y.tolist(), strict=True)), ts_us=ts))
    compact(log_location(cfg))


def _pass(ctx: Context, store: Store) -> float:
    """CPU seconds of one ``rollout.advance`` (of every thread: Arrow reads on several)."""
    ro = store.rollouts.active("ep")[0]
    t = time.process_time()
    out = rollout.advance(ctx, ro)
    took = time.process_time() - t
    assert not out, f"the rollout moved: {out}"
    return took


def _reads(ctx: Context, store: Store) -> float:
    """The pass's reads alone: the rollout's rows and labels (``rollout.advance``)."""
    ro = store.rollouts.active("ep")[0]
    t = time.process_time()
    read_rows(ctx.root, "ep", ro["started_at"], ctx.clock(), ctx.parts)
    read_label_map(ctx.root, "ep", ro["started_at"], ctx.clock(), ctx.parts)
    return time.process_time() - t


def _ms(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1e3:.0f} ms CPU (of {len(times)})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--parts", type=int, default=50)
    p.add_argument("--rows", type=int, default=2000, help="requests' rows per part and role")
    p.add_argument("--passes", type=int, default=7)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rollout-pass-"))
    rollout_cfg = {"shadow": "2h", "max_duration": "1d"}  # no pass moves the rollout
    cfg = make_config(tmp, f"sqlite:///{tmp / 'loopml.db'}", rollout=rollout_cfg)
    store = Store(cfg.store)
    champ, cand = register(store), register(store)
    store.endpoints.deploy("ep", store.versions.get(champ["id"]), actor="bench")
    now = time.time()
    start = now - 1800
    clock = [start]
    ctx = Context(cfg=cfg, store=store, clock=lambda: clock[0], holder="bench")
    rollout.start(ctx, "ep", store.versions.get(cand["id"]))
    span = (now - 60 - start) / args.parts
    for i in range(args.parts):
        _segment(cfg, champ["id"], cand["id"], start + i * span, start + (i + 1) * span, args.rows)
    clock[0] = now
    uncached = Context(
        cfg=cfg, store=store, clock=lambda: clock[0], holder="bench", parts=PartCache(0)
    )
    _pass(uncached, store)  # warm the OS page cache and the judged batches' cursor alike
    cold = _pass(ctx, store)
    # alternated, so that the other load on the machine weighs on both alike
    before, after, reads_before, reads_after = [], [], [], []
    for _ in range(args.passes):
        before.append(_pass(uncached, store))
        after.append(_pass(ctx, store))
        reads_before.append(_reads(uncached, store))
        reads_after.append(_reads(ctx, store))
    parts = sum(1 for _ in (tmp / "artifacts").rglob("part-*.parquet"))
    print(f"{parts} parts ({args.parts} segments), {2 * args.parts * args.rows} prediction rows")
    print(f"pass, every part read (as before):   {_ms(before)}; its reads {_ms(reads_before)}")
    print(f"pass, first with the part cache:     {cold * 1e3:.0f} ms CPU")
    print(f"pass, later with it (no part read):  {_ms(after)}; its reads {_ms(reads_after)}")
    print(
        f"cache: {len(ctx.parts)} parts, {ctx.parts.nbytes / 2**20:.1f} MiB, "
        f"{ctx.parts.hits} hits, {ctx.parts.misses} misses"
    )
    store.close()


if __name__ == "__main__":
    main()
