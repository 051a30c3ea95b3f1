"""Commands over the registry: train and register (``run``), list runs, versions and
decisions, and write a version's report or the production inventory."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.cli.commands import (
    chosen_engine,
    cli_actor,
    command,
    open_store,
    parse_time,
    print_json,
    print_table,
    project_config,
    when,
)
from loopml.display import number

if TYPE_CHECKING:
    from loopml.store.rows import VersionRow


@command
def cmd_run(args: argparse.Namespace) -> int:
    """Train -> gates -> register (the gates' retraining on ``--engine``)."""
    from loopml.progress import ConsoleSteps
    from loopml.train import run
    from loopml.train.outcome import print_run

    cfg = project_config(args)
    steps, actor = ConsoleSteps(), cli_actor(args)
    with chosen_engine(args) as engine:  # where the gates retrain (stability seeds ...)
        result = run(cfg, steps=steps, trigger="manual", actor=actor, engine_map=engine.map)
    if args.json:
        print_json(
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


HEADLINE_METRICS = ("accuracy", "roc_auc", "r2", "rmse")


def version_summary(v: VersionRow) -> dict[str, Any]:
    return {
        "version": v["id"],
        "model": v["model"],
        "number": v["number"],
        "status": v["status"],
        "created_at": when(v["created_at"]),
        "expires_at": when(v["expires_at"]),
        "metrics": {k: x for k, x in v["metrics"].items() if not isinstance(x, list | dict)},
        "artifact_sha256": v["artifact"],
        "format": v["format"],
        "reference_profile_sha256": v["reference_profile"],
        "data_snapshots": {k: h for k, h in v["snapshots"].items() if k != "ids"},
        "lineage": {
            "run": v["run_id"],
            "parent": v["parent_id"],
            "snapshots": {k: h for k, h in v["snapshots"].items() if k != "ids"},
            # the training entry point and sha256 of the project's Python files (no git needed)
            "code": (v.get("extra") or {}).get("code"),
            "threads": ((v.get("extra") or {}).get("threads") or {}).get("limit"),
        },
        "gates": [
            {k: g[k] for k in ("gate", "verdict", "blocking", "message")} for g in v["gates"]
        ],
        "signed": v["manifest_signature"] is not None,
        # what a request must carry ('loopml describe VERSION' adds categories, ranges, curl)
        "inputs": [
            {"name": c["name"], "type": c["kind"]}
            for c in (v.get("signature") or {}).get("columns", [])
        ],
    }


@command
def cmd_versions(args: argparse.Namespace) -> int:
    store = open_store(args)
    rows = [version_summary(v) for v in store.versions.list(model=args.model, status=args.status)]
    if args.json:
        print_json(rows)
        return 0
    # the headline metrics of the tasks listed (a regression has no accuracy)
    shown = [m for m in HEADLINE_METRICS if any(m in r["metrics"] for r in rows)]
    shown = shown or list(HEADLINE_METRICS[:2])
    print_table(
        "Model versions (version = the id the other commands take; # = per model)",
        ["version", "model", "#", "status", *shown, "gates", "created (UTC)", "sha256"],
        [
            (
                r["version"],
                r["model"],
                r["number"],
                r["status"],
                *(number(r["metrics"].get(m)) for m in shown),
                gate_summary(r["gates"]),
                r["created_at"],
                r["artifact_sha256"][:12],
            )
            for r in rows
        ],
        wrap=["gates"],
        drop=["sha256", "created (UTC)", "#", *shown[1:], "gates"],
        wide=args.wide,
    )
    return 0


def gate_summary(gates: list[dict[str, Any]]) -> str:
    """'5/5 pass', or the gates that failed (the full verdicts are in --json and the card)."""
    if not gates:
        return "-"
    from loopml.evaluate.gating.gates import blocks

    failed = [g["gate"] for g in gates if blocks(g)]
    if failed:
        return "failed: " + ", ".join(failed)
    passed = sum(g["verdict"] == "pass" for g in gates)
    return f"{passed}/{len(gates)} pass"


@command
def cmd_runs(args: argparse.Namespace) -> int:
    store = open_store(args)
    rows = store.runs.list(model=args.model)
    if args.json:
        print_json(rows)
        return 0
    print_table(
        "Training runs",
        [
            "run",
            "model",
            "status",
            "trigger",
            "started (UTC)",
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
                when(r["started_at"]),
                number(r["wall_seconds"]),
                number(r["train_seconds"]),
                number(r["peak_memory_mb"]),
                (r["git_commit"] or "-")[:8] + ("*" if r["git_dirty"] else ""),
                (r["error"] or "")[:60],
            )
            for r in rows
        ],
        wrap=["error"],
        drop=["git", "peak MB", "train s", "trigger", "wall s", "started (UTC)"],
        wide=args.wide,
    )
    return 0


@command
def cmd_decisions(args: argparse.Namespace) -> int:
    store = open_store(args)
    rows = store.decisions.list(
        endpoint=args.endpoint, actor=args.actor, action=args.action, limit=args.limit
    )
    if args.json:
        print_json(rows)
        return 0
    print_table(
        "Decisions (newest first)",
        ["id", "time (UTC)", "actor", "action", "subject", "reason"],
        [
            (
                r["id"],
                when(r["at"], seconds=False),
                r["actor"],
                r["action"],
                r["subject"],
                r["reason"] if args.wide else r["reason"][:200],
            )
            for r in rows
        ],
        wrap=["reason"],
        drop=["actor", "subject", "time (UTC)"],
        wide=args.wide,
    )
    return 0


def endpoint_markdown(endpoint: str, ctx: dict[str, Any]) -> str:
    """An endpoint report's context as Markdown: the period's summary, drifted features and
    data-quality findings (the HTML report adds the charts)."""

    def cell(v: Any) -> str:
        return number(v).replace("|", "\\|").replace("\n", " ")

    lines = [f"# {ctx.get('title') or f'Endpoint {endpoint}'}", ""]
    lines.append(f"Generated {when(ctx.get('generated_at'))} UTC.")
    lines.append("")
    summary = ctx.get("summary_period") or {}
    if summary:
        lines += ["## Summary", "", "| measure | value |", "|---|---|"]
        lines += [f"| {cell(k)} | {cell(v)} |" for k, v in summary.items()]
        lines.append("")
    lines += ["## Feature drift", ""]
    feats = ctx.get("feature_drift") or []
    if feats:
        lines += ["| column | windows | drifted | max effect |", "|---|---|---|---|"]
        lines += [
            f"| {cell(f.get('column'))} | {cell(f.get('windows'))} | {cell(f.get('drifted'))} "
            f"| {cell(f.get('max_effect'))} |"
            for f in feats
        ]
    else:
        lines.append("No monitored windows in this period.")
    lines += ["", "## Data quality", ""]
    quality = ctx.get("quality_summary") or []
    if quality:
        lines += ["| check | column | severity | windows | example |", "|---|---|---|---|---|"]
        lines += [
            f"| {cell(q.get('check'))} | {cell(q.get('column'))} | {cell(q.get('severity'))} "
            f"| {cell(q.get('windows'))} | {cell(q.get('example'))} |"
            for q in quality
        ]
    else:
        lines.append("No findings.")
    return "\n".join(lines) + "\n"


@command
def cmd_report(args: argparse.Namespace) -> int:
    """A version's model card + gate report, or an endpoint's report over a period."""
    from loopml.errors import UsageError

    cfg = project_config(args)
    store = open_store(args)
    if args.endpoint:
        from loopml.ui.html_report import endpoint_report, write_endpoint_report

        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
        out = Path(args.out or f"report-{args.endpoint}.{args.format}")
        if args.format == "html":
            write_endpoint_report(cfg, store, args.endpoint, since, until, out)
        else:  # the same context the HTML shows, as JSON or as a Markdown summary of it
            ctx = endpoint_report(store, cfg, args.endpoint, since, until)
            text = (
                json.dumps(ctx, indent=2, default=str)
                if args.format == "json"
                else endpoint_markdown(args.endpoint, ctx)
            )
            out.write_text(text, encoding="utf-8")
        print(f"Wrote {out}")
        return 0
    if args.version is None:
        raise UsageError("Name a VERSION (loopml report 3) or an endpoint (--endpoint NAME).")
    from loopml.evaluate.documents.version_report import render_stored

    text = render_stored(store, cfg, args.version, fmt=args.format)
    out = Path(
        args.out
        or f"version-{args.version}.{ {'md': 'md', 'json': 'json'}.get(args.format, 'html') }"
    )
    out.write_text(text)
    print(f"Wrote {out}")
    return 0


@command
def cmd_inventory(args: argparse.Namespace) -> int:
    """Every version in production (champion, canary, shadow) with its card summary."""
    from loopml.evaluate.documents.inventory import inventory_csv, inventory_rows

    store = open_store(args)
    rows = inventory_rows(store.versions.list(), store.runs.list(limit=100000))
    if args.format == "csv":
        sys.stdout.write(inventory_csv(rows))
    else:
        print_json(rows)
    return 0
