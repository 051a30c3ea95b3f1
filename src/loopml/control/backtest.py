"""``loopml backtest``: replay a labelled history through the real loop on a virtual clock.

What the team's retraining and rollout policy would have done last year, decided by the
same code that decides in production. The engine:

1. reads the history (Parquet or CSV with the project's ``data.time`` and ``data.target``
   columns) and cuts it into requests (``control.history``);
2. opens a throwaway store and artifact root (a temporary folder, or ``dir``: never the
   project's live store), trains the first champion from the config's ``data.train`` through
   ``loopml.train.run`` (gates included) and deploys it;
3. advances a virtual clock one tick at a time. Each tick serves the requests of the tick
   (``control.simserve``: the server's router, model pool and prediction-log writer, with
   virtual timestamps), logs the labels that are due, and runs one pass of the real
   controller (``loopml.control.Controller.reconcile_once`` on the virtual clock): triggers,
   retraining on what was known at the time, gates, shadow and canary with simulated
   routing, rollbacks. The controller reads the log's open segments, as it does in
   production. Once per monitor window, just after the window closes (its end plus
   ``monitor.grace``), the log segment is closed and compacted to Parquet and the real
   monitoring pass runs (``loopml.monitor.jobs.run_monitor``, ``now`` = the tick). A server
   runs the monitor every ``monitor.schedule``; between two window closes that pass would
   only update the labels of windows no trigger reads yet, and each pass costs a scan of
   every part of the hour, so the backtest runs it once a window (a late label reaches a
   window's numbers at most one window later than in production);
4. scores the timeline offline (``control.timeline``).

The clock: without ``per_window`` a virtual second is a second of history. With it, one
monitor window of the config stands for ``per_window`` seconds of history, and every
duration of the config (window, cooldown, rollout steps) is read on that compressed clock,
as the demo's config is written. Options given in history time (``label_delay``, ``start``,
``end``) are converted. A tick is ``serve.controller_interval`` virtual seconds, made longer
when the history would need more than ``MAX_TICKS`` ticks.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loopml.config import Config
from loopml.control.backtest_inputs import (
    ACTOR,
    BacktestOptions,
    check_served,
    first_champion,
    history_in_range,
    workspace,
)
from loopml.control.controller import Controller
from loopml.control.history import event_seconds, plan_requests
from loopml.control.simserve import SimServing
from loopml.control.timeline import build_result, iso_z
from loopml.data.sources import load_frame
from loopml.errors import LoopmlError
from loopml.monitor.jobs import run_monitor
from loopml.progress import NullSteps, Steps
from loopml.store import Store

MAX_TICKS = 2000
Progress = Callable[[float, float, str], None]  # (virtual seconds done, total, note)


@dataclass
class Clock:
    """History time <-> virtual time: ``v = origin + (t - origin) / scale``."""

    origin: float
    scale: float

    def virtual(self, t: Any) -> Any:
        return self.origin + (t - self.origin) / self.scale

    def history(self, v: Any) -> Any:
        return self.origin + (v - self.origin) * self.scale


def run_backtest(
    cfg: Config,
    data: str | Path,
    opts: BacktestOptions | None = None,
    *,
    steps: Steps | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Replay ``data`` through the loop of ``cfg``; returns the result described in
    ``control.timeline.build_result``."""
    opts = opts or BacktestOptions()
    steps = steps or NullSteps()
    t_wall = time.perf_counter()
    frame, t = history_in_range(cfg, data, opts)
    assert cfg.deploy is not None  # checked by load_history
    W = cfg.monitor.window
    scale = (opts.per_window / W) if opts.per_window else 1.0
    history_window = W * scale
    label_delay = history_window if opts.label_delay is None else opts.label_delay
    ids = frame[cfg.data.id].to_numpy() if cfg.data.id in frame.columns else None
    plan = plan_requests(
        t,
        ids,
        max_rows=opts.max_request_rows,
        seed=opts.seed,
        last_gap=history_window,
        span=history_window / 20,
    )
    origin = math.floor(float(t.min()) / W) * W  # virtual windows start at the history's
    clock = Clock(origin=origin, scale=scale)
    vt = clock.virtual(plan.data_t)
    delay_v = label_delay / scale

    sim_cfg, work, kept = workspace(cfg, opts)
    random.seed(opts.seed)  # the router draws canary (keyless) and shadow shares from random
    store = Store(sim_cfg.store_url)
    server = None
    try:
        first_id, frame = first_champion(cfg, sim_cfg, store, steps, frame)
        features = {c: frame[c].to_numpy() for c in frame.columns}
        y = frame[cfg.data.target].to_numpy()
        server = SimServing(sim_cfg, store, features, y, label_delay=delay_v, seed=opts.seed)
        decided_at = _replay(sim_cfg, store, server, plan, vt, clock, delay_v, opts, progress)
        check_served(server, len(plan))
        return build_result(
            cfg=sim_cfg,
            store=store,
            server=server,
            y=y,
            first_id=first_id,
            decided_at=decided_at,
            clock=clock,
            info={
                "data": str(data),
                "rows": len(frame),
                "requests": len(plan),
                "rejected_requests": server.rejected,
                "rejections": dict(server.refusals.most_common(5)),
                "label_delay_s": label_delay,
                "per_window_s": history_window,
                "scale": scale,
                "from": iso_z(float(t.min())),
                "to": iso_z(float(plan.data_t.max())),
                "dir": str(work) if kept else None,
                "seed": opts.seed,
                "notes": notes(cfg, float(t.min()), server.rejected, server.refusals),
                "wall_seconds": None,  # set below
            },
            t_wall=t_wall,
        )
    finally:
        if server is not None:
            server.close()
        store.close()
        if not kept:
            shutil.rmtree(work, ignore_errors=True)


def notes(cfg: Config, start: float, rejected: int, refusals: Any) -> list[str]:
    """What the reader of a backtest should know about how far to trust it."""
    out = []
    try:
        train = load_frame(cfg.data.train, cfg.root)
        assert cfg.data.time is not None
        if cfg.data.time in train.columns:
            end = float(event_seconds(train[cfg.data.time], cfg.data.time).max())
            if end >= start:
                out.append(
                    f"The first champion's training data ({cfg.data.train}) reaches "
                    f"{iso_z(end)}, after the replay starts ({iso_z(start)}): its first windows "
                    "are scored on a period it may have learned from."
                )
    except LoopmlError:
        pass  # a data source the backtest cannot read again: nothing to compare
    on = [t for t in ("schedule", "labels") if t in cfg.retrain.on]
    if on:
        out.append(
            f"retrain.on has {' and '.join(on)}: they count from the champion's deployment, "
            "which the store records in wall-clock time, so they do not fire in a backtest."
        )
    if rejected:
        why = "; ".join(f"{n}x {m}" for m, n in refusals.most_common(2))
        out.append(
            f"{rejected} requests were refused by the model's input checks (a client would get "
            f"a 4xx) and are not in the timeline: {why or 'see rejections'}"
        )
    return out


def _replay(
    cfg: Config,
    store: Store,
    server: SimServing,
    plan: Any,
    vt: np.ndarray,
    clock: Clock,
    delay_v: float,
    opts: BacktestOptions,
    progress: Progress | None,
) -> dict[int, float]:
    """The tick loop; returns the virtual time of every decision id recorded."""
    mon = cfg.monitor
    v0, v_last = clock.origin, float(vt.max())
    horizon = v_last + delay_v + mon.window + mon.grace  # the last labels reach the monitor
    tick = opts.tick or cfg.serve.controller_interval
    tick = max(tick, (horizon - v0) / MAX_TICKS)
    now = [v0]
    controller = Controller(cfg, store, holder=ACTOR, clock=lambda: now[0])
    decided_at: dict[int, float] = {d["id"]: v0 for d in store.decisions.list(limit=50)}
    last_id = max(decided_at, default=0)
    # the monitor runs once per window, right after it closes (see the module docstring)
    next_monitor = (math.floor(v0 / mon.window) + 1) * mon.window + mon.grace
    i = 0
    now_v = v0
    log = server.open_log()
    try:
        while horizon > now_v:
            now_v = min(now_v + tick, horizon)
            j = int(np.searchsorted(vt, now_v, side="left"))
            stats = server.serve(
                [(k, float(vt[k]), plan.rows(k), plan.keys[k]) for k in range(i, j)], log
            )
            i = j
            server.deliver_labels(now_v, log)
            if next_monitor <= now_v or horizon <= now_v:
                log.close()  # the segment closes and becomes Parquet, as the server's does
                server.flush()
                log = server.open_log()
                run_monitor(cfg, store, now=now_v)
                while next_monitor <= now_v:
                    next_monitor += max(mon.window, mon.schedule)
            now[0] = now_v
            controller.reconcile_once()
            actions = []
            for d in store.decisions.list(limit=200):
                if d["id"] > last_id:
                    decided_at[d["id"]] = now_v
                    actions.append(d["action"])
            last_id = max(decided_at, default=last_id)
            if progress is not None:
                note = f"{iso_z(clock.history(now_v))[:10]}  {stats.requests} requests"
                acts = [a for a in actions if not a.startswith("status:")]
                progress(now_v - v0, horizon - v0, note + (f"  {acts[0]}" if acts else ""))
    finally:
        log.close()
        controller.close()
    return decided_at
