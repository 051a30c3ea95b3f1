"""What every command module shares: the command registry and the output helpers.

Only the standard library is imported at module level; loopml's own modules and rich are
imported inside the helpers so that ``loopml --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

Command = Callable[[argparse.Namespace], int]

COMMANDS: dict[str, Command] = {}


def command(fn: Command) -> Command:
    """Register ``cmd_foo_bar`` as the handler of ``loopml foo-bar``."""
    COMMANDS[fn.__name__.removeprefix("cmd_").replace("_", "-")] = fn
    return fn


def project_config(args: argparse.Namespace) -> Any:
    """The project's config; its folder goes on the import path, so every command (run,
    serve with its controller, monitor) imports project modules the same way."""
    from loopml.config import load_config
    from loopml.data.sources import add_project_path

    cfg = load_config(args.config)
    add_project_path(cfg.root)
    return cfg


def open_store(args: argparse.Namespace) -> Any:
    from loopml.store import Store

    return Store(project_config(args).store_url)


def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def parse_time(text: str) -> float:
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


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("-" if v is None else str(v) for v in r))
    Console().print(t)


def fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else ("-" if v is None else str(v))


def cli_actor(args: argparse.Namespace) -> str:
    """Who the decisions log records for a command run from this shell."""
    import getpass

    return f"cli:{getpass.getuser()}"
