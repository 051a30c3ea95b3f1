"""The argument parser of every ``loopml`` command, in one place so that ``loopml --help``
lists the commands in the order written here."""

from __future__ import annotations

import argparse


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

    sp = add("init", "scaffold a working project: the employment example, or on your --data")
    sp.add_argument("dir", nargs="?", default=".")
    sp.add_argument("--force", action="store_true", help="overwrite loopml.yaml and train.py")
    sp.add_argument("--data", help="your data: a Parquet or CSV file, or a folder of Parquet")
    sp.add_argument("--target", help="the column to predict (with --data)")
    sp.add_argument("--time", help="a time column: the latest rows become the test set")
    sp.add_argument("--id", help="a row id column (not a feature)")
    sp.add_argument("--sensitive", nargs="+", metavar="COLUMN", help="columns to audit")
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
    sp = add(
        "enable", "undo the kill switch: a disabled version may serve again (admin)", reason=True
    )
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
    sp.add_argument(
        "--rate-limit",
        type=_positive_rate,
        metavar="N",
        help="this key's own rate limit, in requests/s (default: serve.rate_limit_per_s)",
    )
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


def _positive_rate(text: str) -> float:
    """A rate limit in requests/s: a positive, finite number."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(
            f"must be a positive number of requests per second, such as 5000; got {text!r}"
        )
    return value
