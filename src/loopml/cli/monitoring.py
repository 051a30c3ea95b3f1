"""The commands cron runs: a monitoring pass (``monitor``) and the controller (``control``)."""

from __future__ import annotations

import argparse

from loopml.cli.common import cli_actor, command, print_json, project_config


@command
def cmd_monitor(args: argparse.Namespace) -> int:
    """One monitoring pass over every endpoint (for cron)."""
    from loopml.engines import get_engine
    from loopml.monitor.jobs import run_monitor
    from loopml.progress import ConsoleSteps
    from loopml.store import Store

    cfg = project_config(args)
    engine = get_engine(args.engine, cpus=args.cpus)
    try:
        summary = run_monitor(
            cfg,
            Store(cfg.store_url),
            progress=None if args.json else ConsoleSteps(),
            engine=engine,
        )
    finally:
        engine.close()
    if args.json:
        print_json(summary)
        return 0
    if "skipped" in summary:
        print(f"Skipped: {summary['skipped']}")
        return 0
    for name, s in summary["endpoints"].items():
        print(
            f"{name}: {s.get('computed', 0)} new window(s), {s.get('relabelled', 0)} relabelled, "
            f"{len(s.get('alerts', []))} alert event(s)"
        )
    for a in summary.get("alerts", []):
        print(f"  alert {a.get('event', '')}: {a.get('rule', '')} {a.get('message', '')}")
    return 0


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
