"""The argument parser of every ``loopml`` command, in one place so that ``loopml --help``
lists the commands in the order written here.

Every option has a help line (a test checks it), and ``-c/--config/--project`` is accepted
before or after the command name."""

from __future__ import annotations

import argparse

# The statuses a version can have, for help texts (the parser stays free of loopml imports so
# that ``loopml --help`` starts fast; a test checks this against the registry's list).
STATUSES_HELP = (
    "candidate, rejected, shadow, canary, champion, retired, disabled, rolled_back, inconclusive"
)
VERSION_HELP = "the version id: the first column of 'loopml versions' (not the per-model number)"
WIDE_HELP = "show every column, however wide (by default tables fit the terminal)"
ROLES = ["viewer", "predictor", "labeller", "deployer", "admin"]


def _config_option(p: argparse.ArgumentParser, *, top: bool) -> None:
    p.add_argument(
        "-c",
        "--config",
        "--project",
        dest="config",
        metavar="PATH",
        # on a command, only set it when given, so that `loopml -c X versions` still holds
        default=None if top else argparse.SUPPRESS,
        help="the project: its loopml.yaml or the folder holding it (default: .)",
    )


# kept in step with loopml.cli.EXIT_CODES (tests/core/test_exit_codes.py checks both)
EXIT_HELP = """exit codes:
  0  ok (loopml run: registered as a candidate)
  1  rejected by the gates (or a conflict, or a refused artifact)
  2  usage or config error (nothing was trained), or a version, endpoint or key not found
  3  a failure in your code (training function, data function) or in loopml"""


BACKTEST_HELP = """\
Replay a labelled history through the loop on a virtual clock: what your retraining and
rollout policy (loopml.yaml) would have done. Run in the project folder.

The first champion is trained from data.train (gates included) in a throwaway store (a
temporary folder, or --dir; never the project's store). DATA's rows are replayed in
data.time order as requests of 1-200 rows (sticky by data.id) through the server's router,
model loading and prediction log, with virtual timestamps; labels follow after
--label-delay. Each tick runs the real monitor and one controller pass: triggers,
retraining on what was known then, gates, shadow and canary (the champion also answers
canary rows, logged as "paired"), promotions and rollbacks.

Times (--from/--to): a year (2017), an ISO date or time, or UNIX seconds. Coarse times
(a year, a day) are spread evenly over the gap to the next value. --per-window compresses
time as the demo's config does (one 5 s window = 30d of history).

Output: per monitor window, the champion, the live metric of the answers users got and
what the first champion would have scored without retraining (metric_no_retrain); then
retrainings, promotions, rollbacks and inconclusive rollouts. Each rollback carries
offline_paired_delta (challenger minus champion per-row loss on the exact rows of the
decision, re-scored offline with the true labels) and false_rollback (that delta is not
worse than the decision's margin). --json prints it all as one object; --report FILE
writes a self-contained HTML report with the timeline plotted.

Example (in the demo's project folder):
  loopml backtest employment_2016_2018.parquet --per-window 30d --report backtest.html
"""


def engine_args(sp: argparse.ArgumentParser) -> None:
    """``--engine`` and ``--cpus``: where heavy work runs (``RAY_ADDRESS`` for a cluster)."""
    sp.add_argument(
        "--engine", choices=["local", "ray"], default="local", help="where heavy work runs"
    )
    sp.add_argument("--cpus", type=int, help="CPUs for a local Ray (default: all)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="loopml",
        description="Closed-loop MLOps: train, gate, "
        "serve, monitor and retrain models from one loopml.yaml. Times are UTC.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version="loopml 0.1.0")
    _config_option(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str,
        help: str,
        *,
        json: bool = False,
        reason: bool = False,
        wide: bool = False,
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        _config_option(sp, top=False)
        if json:
            sp.add_argument("--json", action="store_true", help="print JSON (for scripts)")
        if wide:
            sp.add_argument("--wide", action="store_true", help=WIDE_HELP)
        if reason:
            sp.add_argument("--reason", default=None, help="why (recorded in the decisions log)")
        return sp

    def version_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("version", type=int, metavar="VERSION", help=VERSION_HELP)

    def endpoint_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("endpoint", metavar="ENDPOINT", help="the endpoint's name")

    sp = add("init", "scaffold a working project: the employment example, or on your --data")
    sp.add_argument("dir", nargs="?", default=".", help="where to write it (default: .)")
    sp.add_argument("--force", action="store_true", help="overwrite loopml.yaml and train.py")
    sp.add_argument("--data", help="your data: a Parquet or CSV file, or a folder of Parquet")
    sp.add_argument("--target", help="the column to predict (with --data)")
    sp.add_argument("--time", help="a time column: the latest rows become the test set")
    sp.add_argument("--id", help="a row id column (not a feature)")
    sp.add_argument("--sensitive", nargs="+", metavar="COLUMN", help="columns to audit")
    sp = add("run", "train, run the gates and register a version", json=True)
    engine_args(sp)
    sp.epilog = EXIT_HELP
    sp.formatter_class = argparse.RawDescriptionHelpFormatter
    sp = add("versions", "list model versions", json=True, wide=True)
    sp.add_argument("--model", help="only the versions of this model (model.name)")
    sp.add_argument("--status", help=f"only versions with this status: {STATUSES_HELP}")
    sp = add(
        "describe",
        "what an endpoint (or version) takes and answers, with requests to copy",
        json=True,
    )
    sp.add_argument(
        "target",
        metavar="ENDPOINT|VERSION",
        help="an endpoint's name (its champion is described) or a version id",
    )
    sp.add_argument(
        "--url",
        help="the server's base URL in the examples (default: http://serve.host:serve.port)",
    )
    sp = add("runs", "list training runs", json=True, wide=True)
    sp.add_argument("--model", help="only the runs of this model (model.name)")
    sp = add("decisions", "list the decisions/audit log, newest first", json=True, wide=True)
    sp.add_argument("--endpoint", help="only decisions about this endpoint")
    sp.add_argument("--actor", help="only decisions by this actor, e.g. controller or cli:alice")
    sp.add_argument("--action", help="only this action, e.g. promote, rollback, retrain")
    sp.add_argument(
        "--limit", type=int, default=100, help="at most this many decisions (default: 100)"
    )
    sp = add(
        "deploy",
        "put a version on an endpoint (champion, --canary PCT or --shadow)",
        json=True,
        reason=True,
    )
    endpoint_arg(sp)
    version_arg(sp)
    g = sp.add_mutually_exclusive_group()
    g.add_argument(
        "--canary",
        type=float,
        metavar="PCT",
        help="as a canary taking PCT percent of the requests (0-100), beside the champion",
    )
    g.add_argument(
        "--shadow",
        action="store_true",
        help="as a shadow: sees copies of the requests, its answers are logged, never returned",
    )
    sp = add("promote", "make a version the champion of an endpoint", json=True, reason=True)
    endpoint_arg(sp)
    version_arg(sp)
    sp = add(
        "rollback",
        "drop the canary/shadows, or return to the previous champion",
        json=True,
        reason=True,
    )
    endpoint_arg(sp)
    sp = add("disable", "kill switch: take a version out of all traffic now", reason=True)
    version_arg(sp)
    sp = add(
        "enable", "undo the kill switch: a disabled version may serve again (admin)", reason=True
    )
    version_arg(sp)
    sp = add("retire", "retire a version (kept in the registry with its history)", reason=True)
    version_arg(sp)
    sp = add("freeze", "stop all automation on an endpoint", json=True, reason=True)
    endpoint_arg(sp)
    sp = add("unfreeze", "resume automation on an endpoint", json=True, reason=True)
    endpoint_arg(sp)
    sp = add("history", "which version(s) served an endpoint, and when", json=True, wide=True)
    endpoint_arg(sp)
    sp.add_argument(
        "--at", help="ISO time (UTC unless it says otherwise) or UNIX seconds: the traffic then"
    )
    sp = add("keys", "create, list or revoke API keys", json=True, wide=True)
    sp.add_argument("action", choices=["create", "list", "revoke"], help="what to do")
    sp.add_argument("id", nargs="?", help="the key's id, from 'loopml keys list' (revoke)")
    sp.add_argument(
        "--role",
        default="predictor",
        choices=ROLES,
        help="the new key's role, each allowing what the ones before it do: "
        + " < ".join(ROLES)
        + " (default: predictor)",
    )
    sp.add_argument("--name", help="a label for the new key, e.g. who or what uses it")
    sp.add_argument(
        "--endpoint",
        action="append",
        metavar="E",
        help="scope the new key to endpoint E (repeat for more); default: every endpoint",
    )
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
    sp.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="N worker processes sharing the port, each with its own log segments (default 1)",
    )
    sp = add("monitor", "one monitoring pass over every endpoint (for cron)", json=True)
    engine_args(sp)
    sp = add("score", "batch-score a Parquet/CSV file with a version or an endpoint", json=True)
    sp.add_argument(
        "target", metavar="VERSION|ENDPOINT", help="a version id, or an endpoint (its champion)"
    )
    sp.add_argument("--input", required=True, help="Parquet/CSV file or folder, or a URL")
    sp.add_argument("--output", required=True, help="a folder of parts, or a .parquet/.csv file")
    sp.add_argument(
        "--endpoint", help="log the rows under this endpoint (default: deploy.endpoint)"
    )
    sp.add_argument("--chunk-rows", type=int, default=262_144, help="rows per chunk")
    engine_args(sp)
    sp = add(
        "rollout",
        "start a guarded rollout of a candidate (shadow -> canary -> champion)",
        reason=True,
    )
    endpoint_arg(sp)
    version_arg(sp)
    sp = add(
        "backtest",
        "replay a labelled history through the loop on a virtual clock",
        json=True,
    )
    sp.formatter_class = argparse.RawDescriptionHelpFormatter
    sp.description = BACKTEST_HELP
    sp.add_argument(
        "data", metavar="DATA", help="Parquet or CSV file with data.time and the target"
    )
    sp.add_argument(
        "--label-delay",
        metavar="DUR",
        help="labels arrive this long after their prediction, in history time "
        "(default: one monitor window)",
    )
    sp.add_argument("--from", dest="start", metavar="T", help="replay rows at or after T")
    sp.add_argument("--to", dest="end", metavar="T", help="replay rows before T")
    sp.add_argument(
        "--per-window",
        metavar="DUR",
        help="history one monitor window stands for (default: the window itself); "
        "e.g. 30d with the demo's 5s windows",
    )
    sp.add_argument(
        "--tick",
        metavar="DUR",
        help="virtual time between controller passes (default: serve.controller_interval)",
    )
    sp.add_argument("--dir", help="keep the throwaway store here (a new or empty folder)")
    sp.add_argument("--seed", type=int, default=0, help="request sizes and routing draws")
    sp.add_argument("--report", metavar="FILE", help="also write a self-contained HTML report")
    sp = add("report", "write a version's model card and gate report, or an endpoint report")
    sp.add_argument("version", nargs="?", type=int, metavar="VERSION", help=VERSION_HELP)
    sp.add_argument("--endpoint", help="an endpoint report instead of a version's")
    sp.add_argument("--since", help="ISO time (UTC) or UNIX seconds (endpoint report)")
    sp.add_argument("--until", help="ISO time (UTC) or UNIX seconds (endpoint report)")
    sp.add_argument(
        "--format", choices=["html", "md", "json"], default="html", help="(default: html)"
    )
    sp.add_argument("--out", help="output file (default version-N.html or report-ENDPOINT.html)")
    sp = add("explain", "why a version scores the rows of a file: per-row attributions (JSON)")
    sp.add_argument("version", type=int, help="the version to explain (loopml versions)")
    sp.add_argument("--input", required=True, help="rows: a Parquet, CSV or JSON-lines file")
    sp.add_argument("--out", help="write the JSON here instead of printing it")
    sp.add_argument("--class", dest="cls", help="the class whose output is explained")
    sp.add_argument(
        "--method",
        default="auto",
        choices=["auto", "tree", "native", "linear", "permutation"],
        help="auto: exact where the model allows (trees, linear), else model-agnostic",
    )
    sp.add_argument("--limit", type=int, help="explain only the first N rows")
    sp.add_argument(
        "--background", type=int, default=100, help="model-agnostic: background rows (100)"
    )
    sp.add_argument(
        "--max-evals", type=int, default=None, help="model-agnostic: model calls per row (500)"
    )
    sp = add("inventory", "export every version in production with its card summary")
    sp.add_argument("--format", choices=["json", "csv"], default="json", help="(default: json)")
    sp = add(
        "demo",
        "the closed-loop demo on the ACS employment data: tells its story (about 4 minutes) "
        "in a fresh project, then exits (--serve keeps the dashboard up)",
    )
    sp.add_argument(
        "--dir",
        default="loopml-demo",
        help="the demo's project folder, emptied of an earlier demo first (default: loopml-demo)",
    )
    g = sp.add_mutually_exclusive_group()
    g.add_argument(
        "--serve",
        action="store_true",
        help="after the story, keep the server and dashboard running until Ctrl-C",
    )
    g.add_argument(
        "--no-serve",
        action="store_true",
        help="exit after the story (the default; kept for older scripts)",
    )
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
