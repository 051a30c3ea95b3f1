"""The ``loopml`` command line: parses arguments, calls the library, prints the result.

No logic lives here. Imports are lazy so that ``loopml --help`` starts fast. A
``LoopmlError`` becomes a one-paragraph message on stderr and its exit code
(0 ok, 1 gates/checks failed or conflict, 2 usage or config error).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    COMMANDS[fn.__name__.removeprefix("cmd_").replace("_", "-")] = fn
    return fn


# --------------------------------------------------------------------------- helpers
def _config(args: argparse.Namespace) -> Any:
    from loopml.config import load_config

    return load_config(args.config)


def _store(args: argparse.Namespace) -> Any:
    from loopml.store import Store

    return Store(_config(args).store_url)


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _parse_time(text: str) -> float:
    from loopml.errors import UsageError

    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--at must be an ISO time such as 2026-11-23T14:00 or UNIX seconds; got {text!r}."
        ) from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("-" if v is None else str(v) for v in r))
    Console().print(t)


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else ("-" if v is None else str(v))


def _actor(args: argparse.Namespace) -> str:
    import getpass

    return f"cli:{getpass.getuser()}"


# --------------------------------------------------------------------------- commands
@command
def cmd_init(args: argparse.Namespace) -> int:
    """Scaffold a working project (the employment example) in a folder."""
    from loopml.examples.employment import write_project

    dest = Path(args.dir)
    if (dest / "loopml.yaml").exists() and not args.force:
        from loopml.errors import UsageError

        raise UsageError(f"{dest / 'loopml.yaml'} already exists; use --force to overwrite it.")
    write_project(dest)
    print(f"Created a loopml project in {dest}: loopml.yaml, train.py and data/.")
    print(f"Next: cd {dest} && loopml run")
    return 0


@command
def cmd_run(args: argparse.Namespace) -> int:
    """Train -> gates -> register."""
    from loopml.progress import ConsoleSteps
    from loopml.train import run
    from loopml.train.report import print_run

    cfg = _config(args)
    result = run(cfg, steps=ConsoleSteps(), trigger="manual", actor=_actor(args))
    if args.json:
        _print_json(
            {
                "run": result.run_id,
                "version": result.version and result.version["id"],
                "passed": result.passed,
                "metrics": result.metrics,
                "gates": result.gates,
                "timings": result.timings,
            }
        )
    else:
        print_run(cfg, result)
    return 0 if result.passed else 1


def version_summary(v: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": v["id"],
        "model": v["model"],
        "number": v["number"],
        "status": v["status"],
        "created_at": _when(v["created_at"]),
        "expires_at": _when(v["expires_at"]),
        "metrics": {k: x for k, x in v["metrics"].items() if not isinstance(x, list | dict)},
        "artifact_sha256": v["artifact"],
        "format": v["format"],
        "reference_profile_sha256": v["reference_profile"],
        "data_snapshots": {k: h for k, h in v["snapshots"].items() if k != "ids"},
        "lineage": {
            "run": v["run_id"],
            "parent": v["parent_id"],
            "snapshots": {k: h for k, h in v["snapshots"].items() if k != "ids"},
        },
        "gates": [
            {k: g[k] for k in ("gate", "verdict", "blocking", "message")} for g in v["gates"]
        ],
        "signed": v["manifest_signature"] is not None,
    }


@command
def cmd_versions(args: argparse.Namespace) -> int:
    store = _store(args)
    rows = [version_summary(v) for v in store.versions.list(model=args.model, status=args.status)]
    if args.json:
        _print_json(rows)
        return 0
    _table(
        "Model versions",
        ["version", "model", "status", "accuracy", "roc_auc", "gates", "created", "sha256"],
        [
            (
                r["version"],
                r["model"],
                r["status"],
                _fmt(r["metrics"].get("accuracy")),
                _fmt(r["metrics"].get("roc_auc")),
                " ".join(f"{g['gate']}:{g['verdict']}" for g in r["gates"]) or "-",
                r["created_at"],
                r["artifact_sha256"][:12],
            )
            for r in rows
        ],
    )
    return 0


@command
def cmd_runs(args: argparse.Namespace) -> int:
    store = _store(args)
    rows = store.runs.list(model=args.model)
    if args.json:
        _print_json(rows)
        return 0
    _table(
        "Training runs",
        [
            "run",
            "model",
            "status",
            "trigger",
            "started",
            "wall s",
            "train s",
            "peak MB",
            "git",
            "error",
        ],
        [
            (
                r["id"],
                r["model"],
                r["status"],
                r["trigger"],
                _when(r["started_at"]),
                _fmt(r["wall_seconds"]),
                _fmt(r["train_seconds"]),
                _fmt(r["peak_memory_mb"]),
                (r["git_commit"] or "-")[:8] + ("*" if r["git_dirty"] else ""),
                (r["error"] or "")[:60],
            )
            for r in rows
        ],
    )
    return 0


@command
def cmd_decisions(args: argparse.Namespace) -> int:
    store = _store(args)
    rows = store.decisions.list(
        endpoint=args.endpoint, actor=args.actor, action=args.action, limit=args.limit
    )
    if args.json:
        _print_json(rows)
        return 0
    _table(
        "Decisions (newest first)",
        ["id", "time", "actor", "action", "subject", "reason"],
        [
            (r["id"], _when(r["at"]), r["actor"], r["action"], r["subject"], r["reason"][:90])
            for r in rows
        ],
    )
    return 0


@command
def cmd_deploy(args: argparse.Namespace) -> int:
    store = _store(args)
    v = store.versions.get(args.version)
    ep = store.endpoints.deploy(
        args.endpoint,
        v,
        actor=_actor(args),
        reason=args.reason or "",
        canary=args.canary,
        shadow=args.shadow,
    )
    return _print_endpoint(args, ep)


def _print_endpoint(args: argparse.Namespace, ep: dict[str, Any]) -> int:
    if getattr(args, "json", False):
        _print_json(ep)
    else:
        shadows = (
            ", ".join(f"v{s['version_id']} ({s['fraction']:.0%})" for s in ep["shadows"]) or "none"
        )
        canary = f"v{ep['canary_id']} at {ep['canary_weight']:g}%" if ep["canary_id"] else "none"
        print(
            f"Endpoint {ep['name']}: champion v{ep['champion_id']}, canary {canary}, shadows {shadows}"
            + (" [frozen]" if ep["frozen"] else "")
        )
    return 0


@command
def cmd_promote(args: argparse.Namespace) -> int:
    store = _store(args)
    ep = store.endpoints.promote(
        args.endpoint, int(args.version), actor=_actor(args), reason=args.reason or ""
    )
    return _print_endpoint(args, ep)


@command
def cmd_rollback(args: argparse.Namespace) -> int:
    store = _store(args)
    return _print_endpoint(
        args, store.endpoints.rollback(args.endpoint, actor=_actor(args), reason=args.reason or "")
    )


@command
def cmd_disable(args: argparse.Namespace) -> int:
    store = _store(args)
    touched = store.disable(
        int(args.version),
        actor=_actor(args),
        reason=args.reason or "kill switch from the command line",
    )
    print(f"Version {args.version} disabled; removed from: {', '.join(touched) or 'no endpoint'}.")
    return 0


@command
def cmd_retire(args: argparse.Namespace) -> int:
    store = _store(args)
    touched = store.retire(
        int(args.version), actor=_actor(args), reason=args.reason or "retired by hand"
    )
    print(f"Version {args.version} retired; removed from: {', '.join(touched) or 'no endpoint'}.")
    return 0


@command
def cmd_freeze(args: argparse.Namespace) -> int:
    store = _store(args)
    return _print_endpoint(
        args,
        store.endpoints.set_frozen(
            args.endpoint, True, actor=_actor(args), reason=args.reason or "frozen by hand"
        ),
    )


@command
def cmd_unfreeze(args: argparse.Namespace) -> int:
    store = _store(args)
    return _print_endpoint(
        args,
        store.endpoints.set_frozen(
            args.endpoint, False, actor=_actor(args), reason=args.reason or "unfrozen by hand"
        ),
    )


@command
def cmd_history(args: argparse.Namespace) -> int:
    store = _store(args)
    rows = store.endpoints.history(args.endpoint, at=_parse_time(args.at) if args.at else None)
    if args.json:
        _print_json(rows)
        return 0
    if args.at and not rows:
        print(f"Endpoint {args.endpoint} had no traffic at {args.at}.")
        return 0
    _table(
        f"Traffic of {args.endpoint}",
        ["from", "champion", "canary", "weight %", "shadows"],
        [
            (
                _when(r["at"]),
                r["traffic"]["champion"],
                r["traffic"]["canary"],
                _fmt(r["traffic"]["canary_weight"]),
                ",".join(str(s["version_id"]) for s in r["traffic"]["shadows"]) or "-",
            )
            for r in rows
        ],
    )
    return 0


@command
def cmd_keys(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.action == "create":
        key, rec = store.keys.create(args.role, name=args.name or "", actor=_actor(args))
        print(
            f"Created API key {rec['id']} ({rec['prefix']}) with role {rec['role']}. It is shown once:"
        )
        print(key)
        return 0
    if args.action == "revoke":
        store.keys.revoke(int(args.id), actor=_actor(args))
        print(f"Revoked API key {args.id}.")
        return 0
    rows = store.keys.list()
    if args.json:
        _print_json(rows)
        return 0
    _table(
        "API keys",
        ["id", "prefix", "role", "name", "created", "revoked"],
        [
            (
                r["id"],
                r["prefix"],
                r["role"],
                r["name"],
                _when(r["created_at"]),
                _when(r["revoked_at"]),
            )
            for r in rows
        ],
    )
    return 0


@command
def cmd_control(args: argparse.Namespace) -> int:
    """The controller: one pass (--once, for cron), a manual retrain request, or a loop."""
    from loopml.control import Controller, request_retrain
    from loopml.store import Store

    cfg = _config(args)
    store = Store(cfg.store_url)
    if args.retrain:
        row = request_retrain(store, args.retrain, actor=_actor(args), reason=args.reason or "")
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
        _print_json({"leader": leader, "decisions": decisions})
    elif not leader:
        print("Another controller holds the lock; this pass did nothing.")
    else:
        for d in decisions:
            print(f"{d['action']:<20} {d['subject']:<20} {d['reason']}")
        print(f"{len(decisions)} decision(s).")
    return 0


@command
def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server: prediction API (dashboard and controller join in loopml.server)."""
    from loopml.server import serve

    return serve(
        _config(args), host=args.host, port=args.port, auth=False if args.no_auth else None
    )


@command
def cmd_report(args: argparse.Namespace) -> int:
    """A version's model card + gate report, or an endpoint's report over a period."""
    from loopml.errors import UsageError

    cfg = _config(args)
    store = _store(args)
    if args.endpoint:
        from loopml.ui.report import write_endpoint_report

        since = _parse_time(args.since) if args.since else None
        until = _parse_time(args.until) if args.until else None
        out = Path(args.out or f"report-{args.endpoint}.html")
        write_endpoint_report(cfg, store, args.endpoint, since, until, out)
        print(f"Wrote {out}")
        return 0
    if args.version is None:
        raise UsageError("Name a VERSION (loopml report 3) or an endpoint (--endpoint NAME).")
    from loopml.evaluate.report import render

    v = store.versions.get(args.version)
    run = store.runs.get(v["run_id"])
    snaps = {k: store.snapshots.get(h) for k, h in v["snapshots"].items() if k != "ids"}
    text = render(v, run, cfg.model_dump(mode="json"), fmt=args.format, snapshots=snaps)
    out = Path(
        args.out or f"version-{v['id']}.{ {'md': 'md', 'json': 'json'}.get(args.format, 'html') }"
    )
    out.write_text(text)
    print(f"Wrote {out}")
    return 0


@command
def cmd_inventory(args: argparse.Namespace) -> int:
    """Every version in production (champion, canary, shadow) with its card summary."""
    from loopml.evaluate.inventory import inventory_csv, inventory_rows

    store = _store(args)
    rows = inventory_rows(store.versions.list(), store.runs.list(limit=100000))
    if args.format == "csv":
        sys.stdout.write(inventory_csv(rows))
    else:
        _print_json(rows)
    return 0


@command
def cmd_rollout(args: argparse.Namespace) -> int:
    """Start a guarded rollout of a candidate: shadow -> canary steps -> champion."""
    import time

    from loopml.control.context import Context
    from loopml.control.rollout import start

    cfg = _config(args)
    store = _store(args)
    ctx = Context(cfg=cfg, store=store, clock=time.time, holder="cli", actor=_actor(args))
    start(
        ctx,
        args.endpoint,
        store.versions.get(args.version),
        evidence={"requested_by": _actor(args), "reason": args.reason or ""},
    )
    print(
        f"Rollout of version {args.version} on {args.endpoint} started in shadow; the "
        f"controller (loopml serve, or loopml control) moves it through "
        f"{cfg.deploy.rollout.steps if cfg.deploy else 'the canary steps'} while its guards hold."
    )
    return 0


@command
def cmd_monitor(args: argparse.Namespace) -> int:
    """One monitoring pass over every endpoint (for cron)."""
    from loopml.monitor.jobs import run_monitor
    from loopml.progress import ConsoleSteps
    from loopml.store import Store

    cfg = _config(args)
    summary = run_monitor(cfg, Store(cfg.store_url), progress=None if args.json else ConsoleSteps())
    if args.json:
        _print_json(summary)
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
def cmd_demo(args: argparse.Namespace) -> int:
    from loopml.demo import run_demo

    return run_demo(Path(args.dir), serve=not args.no_serve)


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="loopml",
        description="Closed-loop MLOps: train, gate, "
        "serve, monitor and retrain models from one loopml.yaml.",
    )
    p.add_argument("--version", action="version", version="loopml 0.1.0")
    p.add_argument("--config", "-c", default=None, help="loopml.yaml or its folder (default: .)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str, help: str, *, json: bool = False, reason: bool = False
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        if json:
            sp.add_argument("--json", action="store_true", help="print JSON")
        if reason:
            sp.add_argument("--reason", default=None, help="why (recorded in the decisions log)")
        return sp

    sp = add("init", "scaffold a working project (the employment example)")
    sp.add_argument("dir", nargs="?", default=".")
    sp.add_argument("--force", action="store_true")
    add("run", "train, run the gates and register a version", json=True)
    sp = add("versions", "list model versions", json=True)
    sp.add_argument("--model")
    sp.add_argument("--status")
    sp = add("runs", "list training runs", json=True)
    sp.add_argument("--model")
    sp = add("decisions", "list the decisions/audit log", json=True)
    sp.add_argument("--endpoint")
    sp.add_argument("--actor")
    sp.add_argument("--action")
    sp.add_argument("--limit", type=int, default=100)
    sp = add(
        "deploy",
        "put a version on an endpoint (champion, --canary PCT or --shadow)",
        json=True,
        reason=True,
    )
    sp.add_argument("endpoint")
    sp.add_argument("version", type=int)
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--canary", type=float, metavar="PCT")
    g.add_argument("--shadow", action="store_true")
    sp = add("promote", "make a version the champion of an endpoint", json=True, reason=True)
    sp.add_argument("endpoint")
    sp.add_argument("version", type=int)
    sp = add(
        "rollback",
        "drop the canary/shadows, or return to the previous champion",
        json=True,
        reason=True,
    )
    sp.add_argument("endpoint")
    sp = add("disable", "kill switch: take a version out of all traffic now", reason=True)
    sp.add_argument("version", type=int)
    sp = add("retire", "retire a version (kept in the registry with its history)", reason=True)
    sp.add_argument("version", type=int)
    sp = add("freeze", "stop all automation on an endpoint", json=True, reason=True)
    sp.add_argument("endpoint")
    sp = add("unfreeze", "resume automation on an endpoint", json=True, reason=True)
    sp.add_argument("endpoint")
    sp = add("history", "which version(s) served an endpoint, and when", json=True)
    sp.add_argument("endpoint")
    sp.add_argument("--at", help="ISO time or UNIX seconds: only the traffic in force then")
    sp = add("keys", "create, list or revoke API keys", json=True)
    sp.add_argument("action", choices=["create", "list", "revoke"])
    sp.add_argument("id", nargs="?", help="key id (revoke)")
    sp.add_argument(
        "--role",
        default="predictor",
        choices=["viewer", "predictor", "labeller", "deployer", "admin"],
    )
    sp.add_argument("--name")
    sp = add(
        "control",
        "run the controller: one pass with --once (cron), else a loop",
        json=True,
        reason=True,
    )
    sp.add_argument("--once", action="store_true", help="one reconcile pass, then exit")
    sp.add_argument("--retrain", metavar="ENDPOINT", help="ask the controller to retrain ENDPOINT")
    sp = add("serve", "run the server: prediction API, dashboard and controller")
    sp.add_argument("--host", help="interface to listen on (default: serve.host, 127.0.0.1)")
    sp.add_argument("--port", type=int, help="port (default: serve.port, 8000)")
    sp.add_argument("--no-auth", action="store_true", help="no API keys (loopback only)")
    add("monitor", "one monitoring pass over every endpoint (for cron)", json=True)
    sp = add(
        "rollout",
        "start a guarded rollout of a candidate (shadow -> canary -> champion)",
        reason=True,
    )
    sp.add_argument("endpoint")
    sp.add_argument("version", type=int)
    sp = add("report", "write a version's model card and gate report, or an endpoint report")
    sp.add_argument("version", nargs="?", type=int)
    sp.add_argument("--endpoint", help="an endpoint report instead of a version's")
    sp.add_argument("--since", help="ISO time or UNIX seconds (endpoint report)")
    sp.add_argument("--until", help="ISO time or UNIX seconds (endpoint report)")
    sp.add_argument("--format", choices=["html", "md", "json"], default="html")
    sp.add_argument("--out", help="output file (default version-N.html or report-ENDPOINT.html)")
    sp = add("inventory", "export every version in production with its card summary")
    sp.add_argument("--format", choices=["json", "csv"], default="json")
    sp = add("demo", "run the closed-loop demo on the ACS employment data")
    sp.add_argument("--dir", default="loopml-demo")
    sp.add_argument("--no-serve", action="store_true", help="stop before starting the server")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from loopml.errors import LoopmlError

    try:
        return COMMANDS[args.command](args)
    except LoopmlError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
