"""``loopml score``: batch scoring of a file with a version or an endpoint's champion."""

from __future__ import annotations

import argparse

from loopml.cli.commands import command, print_json, project_config


@command
def cmd_score(args: argparse.Namespace) -> int:
    """Score --input into --output; rows go to the prediction log with role ``batch``."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from loopml.scoring import score
    from loopml.store import Store

    cfg = project_config(args)
    store = Store(cfg.store_url)
    bar = Progress(
        TextColumn("[bold]scoring[/]"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} rows"),
        TimeRemainingColumn(),
        transient=True,
        disable=args.json,
    )
    with bar:
        task = bar.add_task("score", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        summary = score(
            cfg,
            store,
            args.target,
            args.input,
            args.output,
            endpoint=args.endpoint,
            engine=args.engine,
            cpus=args.cpus,
            chunk_rows=args.chunk_rows,
            progress=progress,
        )
    out = summary.to_dict()
    if args.json:
        print_json(out)
        return 0
    resumed = f", {summary.skipped_chunks} already done" if summary.skipped_chunks else ""
    print(
        f"Scored {summary.rows:,} rows with version {summary.version} into {summary.output} "
        f"({summary.chunks} chunks{resumed}; {summary.seconds:.1f} s, "
        f"{out['rows_per_second'] or 0:,.0f} rows/s on the {summary.engine} engine). "
        f"Logged under endpoint {summary.endpoint!r} with role 'batch'."
    )
    return 0
