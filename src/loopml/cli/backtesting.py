"""``loopml backtest``: what the loop would have done on a labelled history."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loopml.cli.commands import command, print_json, print_table, project_config
from loopml.display import number

SHORT = {  # the decisions worth a column in the timeline, in a word or two
    "retrain": "retrain",
    "retrain-passed": "candidate",
    "retrain-rejected": "gates failed",
    "retrain-error": "retrain error",
    "shadow": "shadow",
    "canary": "canary",
    "rollout-step": "step",
    "promote": "PROMOTED",
    "rollback": "ROLLED BACK",
    "rollout-aborted": "aborted",
    "breaker-open": "breaker open",
    "trigger-suppressed": "suppressed",
}


def parse_when(text: str, option: str) -> float:
    """A history time: a year (2017), an ISO date or time, or UNIX seconds."""
    from loopml.errors import UsageError

    t = text.strip()
    if t.isdigit() and len(t) == 4:
        return datetime(int(t), 1, 1, tzinfo=UTC).timestamp()
    try:
        return float(t)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise UsageError(
            f"{option} must be a year (2017), an ISO date or time (2017-03-01, "
            f"2017-03-01T14:00) or UNIX seconds. Got {text!r} instead.",
            field=option,
        ) from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def parse_duration_arg(text: str | None, option: str) -> float | None:
    from loopml.config.fields import parse_duration
    from loopml.errors import UsageError

    if text is None:
        return None
    try:
        value = parse_duration(text)
    except ValueError:
        raise UsageError(
            f"{option} must be a duration such as '30d', '12h' or '90s'. Got {text!r} instead.",
            field=option,
        ) from None
    if option in ("--per-window", "--tick") and value <= 0:
        raise UsageError(f"{option} must be longer than 0 s. Got {text!r}.", field=option)
    return value


@contextmanager
def _progress(quiet: bool) -> Iterator[Any]:
    """A rich progress bar over virtual time on stderr (none with --json)."""
    if quiet:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]Replay[/]"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("replay", total=1.0, note="")

        def update(done: float, total: float, note: str) -> None:
            bar.update(task, completed=done / total if total else 1.0, note=note)

        yield update


@command
def cmd_backtest(args: argparse.Namespace) -> int:
    """Replay a labelled history through the loop on a virtual clock (see ``--help``)."""
    from loopml.control.backtest import BacktestOptions, run_backtest
    from loopml.progress import ConsoleSteps, NullSteps

    cfg = project_config(args)
    opts = BacktestOptions(
        label_delay=parse_duration_arg(args.label_delay, "--label-delay"),
        start=parse_when(args.start, "--from") if args.start else None,
        end=parse_when(args.end, "--to") if args.end else None,
        per_window=parse_duration_arg(args.per_window, "--per-window"),
        tick=parse_duration_arg(args.tick, "--tick"),
        dir=Path(args.dir) if args.dir else None,
        seed=args.seed,
    )
    data = Path(args.data).expanduser().resolve()
    with _progress(args.json) as bar:
        result = run_backtest(
            cfg,
            data,
            opts,
            steps=NullSteps() if args.json else ConsoleSteps(),
            progress=bar,
        )
    if args.report:
        from loopml.ui.backtest_html import render_backtest

        out = Path(args.report).expanduser()
        out.write_text(render_backtest(result), encoding="utf-8")
        result["report"] = str(out.resolve())
    if args.json:
        print_json(result)
        return 0
    print_timeline(result)
    return 0


def describe_rollout(kind: str, r: dict[str, Any]) -> str:
    """One line per rollout decision: what was judged online, and the offline check."""
    delta, iv = r.get("offline_paired_delta"), r.get("interval")
    online = (
        f"online {r.get('score')} [{iv[0]:+.4f}, {iv[1]:+.4f}] on {r.get('rows')} rows, "
        if isinstance(iv, list) and len(iv) == 2
        else ""
    )
    offline = (
        "no rows to score" if delta is None else f"{delta:+.4f} on {r.get('offline_rows')} rows"
    )
    verdict = " FALSE ROLLBACK" if r.get("false_rollback") else ""
    return (
        f"{kind[:-1] if kind.endswith('s') else kind} #{r['decision']} at {r['history_time']}: "
        f"version {r.get('candidate')} vs {r.get('champion')}; {online}offline "
        f"{r.get('score_used')} delta {offline} (margin {number(r.get('margin_used'))}){verdict}"
    )


def print_timeline(result: dict[str, Any]) -> None:
    """The human answer: one line per window, then the decisions that matter."""
    m = result["metric"]
    rows = []
    for w in result["windows"]:
        acts = [SHORT.get(d["action"]) for d in w["decisions"]]
        rows.append(
            [
                (w["history_start"] or "")[:10],
                w["champion"],
                w["rows"],
                "too few rows" if w["too_few_rows"] else number(w["metric"]),
                "" if w["too_few_rows"] else number(w["metric_no_retrain"]),
                ", ".join(dict.fromkeys(a for a in acts if a)),
            ]
        )
    print_table(
        f"Backtest of {result['data']} ({result['from'][:10]} to {result['to'][:10]}, "
        f"{result['requests']:,} requests)",
        ["window from", "champion", "rows", m, f"{m} no retrain", "decisions"],
        rows,
    )
    s = result["summary"]
    print(
        f"{m}: {number(s['mean_metric'])} with the loop, {number(s['mean_metric_no_retrain'])} with "
        f"the first champion left alone (row-weighted over {s['scored_windows']} windows)."
    )
    print(
        f"retrainings {s['retrains']}, promotions {s['promotions']}, rollbacks {s['rollbacks']} "
        f"(false {s['false_rollbacks']}), inconclusive {s['inconclusive']}; final champion "
        f"version {s['final_champion']}. Took {result['wall_seconds']:.0f} s."
    )
    for kind in ("promotions", "inconclusive", "rollbacks"):
        for r in result[kind]:
            print("  " + describe_rollout(kind, r))
    for note in result.get("notes", []):
        print(f"Note: {note}")
    if result.get("report"):
        print(f"Report: {result['report']}")
    if result.get("dir"):
        print(f"The backtest's store, artifacts and logs are kept in {result['dir']}.")
