"""The commands cron runs: a monitoring pass (``monitor``) and the controller (``control``)."""

from __future__ import annotations

import argparse
from typing import Any

from loopml.cli.commands import cli_actor, command, print_json, project_config


@command
def cmd_monitor(args: argparse.Namespace) -> int:
    """One monitoring pass over every endpoint (for cron)."""
    from loopml.background_worker import monitor_live
    from loopml.cli.commands import chosen_engine
    from loopml.monitor.jobs import run_monitor
    from loopml.progress import ConsoleSteps
    from loopml.store import Store

    cfg = project_config(args)
    with chosen_engine(args) as engine:
        summary = run_monitor(
            cfg,
            Store(cfg.store_url),
            progress=None if args.json else ConsoleSteps(),
            live=monitor_live(cfg),  # recent traffic in log segments not compacted yet
            engine=engine,
        )
    if args.json:
        print_json(summary)
        return 0
    if "skipped" in summary:
        print(f"Skipped: {summary['skipped']}")
        return 0
    if not summary["endpoints"]:
        print("No endpoint has a prediction log yet: deploy a version and send it rows.")
    for name, s in summary["endpoints"].items():
        print(
            f"{name}: {s.get('computed', 0)} new window(s), {s.get('relabelled', 0)} relabelled, "
            f"{len(s.get('alerts', []))} alert event(s)"
        )
        for line in s.get("waiting", []):
            print(f"  {line}")
        for w in s.get("provisional", []):  # open windows: what they have and wait for
            print(f"  {w['message']}")
        refused = s.get("refused") or {}
        for w in refused.get("windows", []):
            print(f"  {refused_line(w)}")
        for w in refused.get("open", []):
            print(f"  {refused_line(w)} (window still open)")
    for a in summary.get("alerts", []):
        print(f"  alert {a.get('event', '')}: {a.get('rule', '')} {a.get('message', '')}")
    if not summary.get("windows"):
        print(waiting_for(cfg))
        for name, (rows, open_segments) in window_rows(cfg).items():
            print(
                f"  {name}: {rows:,} row(s) of the current window already in the log"
                + (f", more in {open_segments} open segment(s)" if open_segments else "")
                + f" (monitor.min_window_rows {cfg.monitor.min_window_rows})"
            )
    return 0


def refused_line(w: dict[str, Any]) -> str:
    """'window 2024-03-01 14:00-15:00: refused 40 request(s), 120 row(s) (100% of rows; served
    0): null f2 30 rows, ...'."""
    from loopml.monitor.open_windows import span

    share = "" if w["share"] is None else f"{w['share']:.0%} of rows; "
    top = ", ".join(
        f"{c['reason']} {c['column']} {c['rows']} row(s)"
        if c["rows"]
        else f"{c['reason']} {c['column']} {c['requests']} request(s)"
        for c in w["counts"][:3]
    )
    return (
        f"window {span(w['start'], w['end'])}: refused {w['requests']} request(s), "
        f"{w['rows']} row(s) ({share}served {w['served']}): {top}"
    )


def window_rows(cfg: Any, now: float | None = None) -> dict[str, tuple[int, int]]:
    """Per endpoint: rows of the current window in closed log parts (about: a part may reach
    over the window's edge), and how many log segments are still open."""
    import math
    import time

    import pyarrow.parquet as pq

    from loopml.logs.layout import HOUR, PREDICTIONS, hour_name, log_location
    from loopml.logs.logfiles import LogFiles

    now = time.time() if now is None else now
    start = math.floor(now / cfg.monitor.window) * cfg.monitor.window
    logs = LogFiles(log_location(cfg))
    hours = [hour_name(t) for t in range(int(start // HOUR * HOUR), int(now) + 1, HOUR)]
    out = {}
    for endpoint in logs.endpoints():
        parts = logs.overlapping(logs.parts(PREDICTIONS, endpoint, hours), "_ts", start, now + 1)
        rows = sum(pq.read_metadata(p, filesystem=logs.arrow_fs).num_rows for p, _ in parts)
        out[endpoint] = (rows, len(logs.live_segments(PREDICTIONS)))
    return out


def waiting_for(cfg: Any, now: float | None = None) -> str:
    """Why a pass computed nothing yet: the window that closes next, and when rows get there."""
    import math
    import textwrap
    import time

    from loopml.cli.commands import when

    now = time.time() if now is None else now
    mon, serve = cfg.monitor, cfg.serve
    start = math.floor(now / mon.window) * mon.window
    closes = start + mon.window + mon.grace
    return textwrap.fill(
        f"Nothing new to compute. A window is judged once it is closed: the current one "
        f"({when(start)} to {when(start + mon.window)} UTC) closes at {when(closes)} UTC, in "
        f"{closes - now:.0f} s (monitor.window {mon.window:g} s + monitor.grace {mon.grace:g} s). "
        f"Answered rows reach the monitor when their log segment closes (serve.log_segment, "
        f"{serve.log_segment:g} s) and is compacted (serve.compact_every, "
        f"{serve.compact_every:g} s); windows under monitor.min_window_rows "
        f"({mon.min_window_rows}) rows are stored but not judged. 'loopml serve' runs this "
        f"pass every {mon.schedule:g} s by itself.",
        width=80,
    )


@command
def cmd_control(args: argparse.Namespace) -> int:
    """The controller: one pass (--once, for cron), a manual retrain request, or a loop."""
    from loopml.control import Controller, request_retrain
    from loopml.store import Store

    cfg = project_config(args)
    store = Store(cfg.store_url)
    if args.retrain:
        row = request_retrain(store, args.retrain, actor=cli_actor(args), reason=args.reason or "")
        print(
            f"Retraining of {args.retrain} requested (request {row['id']}); the controller starts "
            "it at its next pass."
        )
        if not args.once:
            return 0
    controller = Controller(cfg, store)
    if not args.once:
        import threading

        print(
            f"Controller {controller.holder} running every {cfg.serve.controller_interval:g} s "
            "(Ctrl-C to stop)."
        )
        controller.run_forever(threading.Event())
        return 0
    try:
        decisions = controller.reconcile_once()
        leader = controller.leadership.holds()
    finally:
        controller.close()
    if args.json:
        print_json({"leader": leader, "decisions": decisions})
    elif not leader:
        print("Another controller holds the lock; this pass did nothing.")
    else:
        for d in decisions:
            print(f"{d['action']:<20} {d['subject']:<20} {d['reason']}")
        print(f"{len(decisions)} decision(s).")
    return 0
