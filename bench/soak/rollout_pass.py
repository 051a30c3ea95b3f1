"""One controller pass over a rollout whose log holds many compacted parts, with the parts
read by earlier passes kept (``Context.parts``) and without (every part read each pass, as
before ``loopml.logs.partcache``). The log is written by ``PredictionLog`` and compacted, one
part per segment; the rollout stays in shadow throughout (no pass moves it).

    .venv/bin/python bench/soak/rollout_pass.py              # 50 parts of 2 x 2000 rows
    .venv/bin/python bench/soak/rollout_pass.py --parts 100 --rows 1000
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
from loopml.store.rows import VersionRow

SIGNATURE = {
    "columns": [
        {"name": f"x{i}", "kind": "number", "dtype": "float64", "nullable": False} for i in range(8)
    ],
    "task": "classification",
    "target": "y",
    "classes": [0, 1],
    "extra": {},
}


def _version(store: Store) -> VersionRow:
    run = store.runs.start(
        project="p", model="m", params={}, snapshots={}, python="3.11", packages={}
    )
    return store.versions.register(
        model="m",
        run_id=run,
        status="candidate",
        format="skops",
        artifact="a" * 64,
        signature=SIGNATURE,
        metrics={"accuracy": 0.9},
        slices=[],
        gates=[],
        snapshots={},
        manifest={},
    )


def _segment(cfg: Config, champ: int, cand: int, t0: float, t1: float, rows: int) -> None:
    """``rows`` mirrored requests of 50 rows (champion and shadow answers, labels) logged in
    [t0, t1) by one writer, then compacted into parts."""
    rng = np.random.default_rng(int(t0))
    with PredictionLog(log_location(cfg)) as log:
        for k in range(0, rows, 50):
            ids = new_request_ids(50)
            ts = int((t0 + (t1 - t0) * k / rows) * 1e6)
            feats = {f"x{i}": rng.normal(size=50) for i in range(8)}
            y = rng.integers(0, 2, 50)
            for version, role in ((champ, "champion"), (cand, "shadow")):
                p = np.where(rng.random(50) < 0.9, y, 1 - y)
                proba = np.column_stack([1.0 - p * 0.8 - 0.1, p * 0.8 + 0.1])
                log.log_predictions_sync(
                    endpoint="ep",
                    version=version,
                    role=role,
                    request_ids=ids,
                    features=feats,
                    predictions=p,
                    probabilities=proba,
                    latency_ms=4.0,
                    ts_us=ts,
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
    cfg = Config.model_validate(
        {
            "project": "p",
            "store": f"sqlite:///{tmp / 'loopml.db'}",
            "artifacts": str(tmp / "artifacts"),
            "data": {"train": "x.parquet", "target": "y"},
            "model": {"name": "m", "train": "t.py:train"},
            "deploy": {"endpoint": "ep", "rollout": {"shadow": "2h", "max_duration": "1d"}},
        }
    )
    store = Store(cfg.store)
    champ, cand = _version(store), _version(store)
    store.endpoints.deploy("ep", champ, actor="bench")
    now = time.time()
    start = now - 1800
    clock = [start]
    ctx = Context(cfg=cfg, store=store, clock=lambda: clock[0], holder="bench")
    rollout.start(ctx, "ep", cand)
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
    print(f"{parts} parts ({args.parts} per log), {2 * args.parts * args.rows} prediction rows")
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
