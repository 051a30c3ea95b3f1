"""Commands around a whole project: scaffold one (``init``), run its server (``serve``) and
the closed-loop demo (``demo``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from loopml.cli.commands import command, project_config


@command
def cmd_init(args: argparse.Namespace) -> int:
    """Scaffold a working project: the employment example, or one on the user's --data."""
    from loopml.errors import UsageError

    dest = Path(args.dir)
    if args.data or args.target:
        if not (args.data and args.target):
            raise UsageError("loopml init --data FILE needs --target COLUMN too (and vice versa).")
        from loopml.examples.scaffold import write_own_project

        notes = write_own_project(
            dest,
            args.data,
            args.target,
            time=args.time,
            id=args.id,
            sensitive=args.sensitive,
            force=args.force,
        )
        print(f"Created a loopml project in {dest} on {args.data}: loopml.yaml and train.py.")
        for note in notes:
            print(f"  {note}")
    else:
        if (dest / "loopml.yaml").exists() and not args.force:
            raise UsageError(f"{dest / 'loopml.yaml'} already exists; use --force to overwrite it.")
        from loopml.examples.employment import write_project

        write_project(dest)
        print(f"Created a loopml project in {dest}: loopml.yaml, train.py and data/.")
    print(f"Next: cd {dest} && loopml run")
    return 0


@command
def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server: prediction API (dashboard and controller join in loopml.server)."""
    from loopml.server import serve

    return serve(
        project_config(args),
        host=args.host,
        port=args.port,
        auth=False if args.no_auth else None,
        workers=args.workers,
        project=getattr(args, "config", None),
    )


@command
def cmd_demo(args: argparse.Namespace) -> int:
    from loopml.demo import run_demo

    return run_demo(Path(args.dir), serve=args.serve)
