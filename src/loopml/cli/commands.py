"""What every command module shares: the command registry and the output helpers.

Only the standard library is imported at module level; loopml's own modules and rich are
imported inside the helpers so that ``loopml --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
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


@contextlib.contextmanager
def chosen_engine(args: argparse.Namespace) -> Iterator[Any]:
    """The engine of ``--engine`` and ``--cpus`` (Ray is imported only when chosen), closed
    when the block ends."""
    from loopml.engines import get_engine

    engine = get_engine(args.engine, cpus=args.cpus)
    try:
        yield engine
    finally:
        engine.close()


def open_store(args: argparse.Namespace) -> Any:
    from loopml.store import Store

    return Store(project_config(args).store_url)


def when(ts: float | None, *, seconds: bool = True) -> str:
    """A UTC time as text (the tables say UTC in their headers)."""
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    )


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


def _cell(v: Any) -> str:
    return "-" if v is None else str(v)


WRAP_MIN = 30  # characters a wrapping column keeps before other columns are left out


def table_width(widths: Sequence[int]) -> int:
    """Characters a rich table with these column widths takes (borders and padding)."""
    return sum(widths) + 3 * len(widths) + 1


def fit_columns(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    width: int,
    wrap: Sequence[str] = (),
    drop: Sequence[str] = (),
) -> list[str]:
    """The columns to show in ``width`` characters: leave out those in ``drop`` (in its order)
    until every word fits. Columns not in ``wrap`` never wrap, so no word in them is cut; a
    column in ``wrap`` breaks between words and needs its longest word, and room for a few
    words a line (``WRAP_MIN``) so that its text stays readable."""
    need = {}
    for i, c in enumerate(columns):
        cells = [c, *(r[i] for r in rows)]
        natural = max(len(cell) for cell in cells)
        if c in wrap:
            longest = max(len(w) for cell in cells for w in (cell.split() or [""]))
            need[c] = min(natural, max(longest, WRAP_MIN))
        else:
            need[c] = natural
    shown = list(columns)
    for c in drop:
        if table_width([need[x] for x in shown]) <= width:
            break
        if c in shown:
            shown.remove(c)
    return shown


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    wrap: Sequence[str] = (),
    drop: Sequence[str] = (),
    wide: bool = False,
) -> None:
    """A table that fits the terminal (80 columns in a pipe): the columns in ``drop`` are left
    out, in that order, until it fits; ``wide`` shows them all however wide. Key columns (not
    in ``wrap``) never wrap or cut a word."""
    from rich.console import Console
    from rich.table import Table

    cells = [[_cell(v) for v in r] for r in rows]
    console = Console()
    shown = list(columns)
    if wide:
        natural = [max(len(x) for x in [c, *(r[i] for r in cells)]) for i, c in enumerate(columns)]
        console = Console(width=max(console.width, table_width(natural)))
    else:
        shown = fit_columns(columns, cells, width=console.width, wrap=wrap, drop=drop)
    left_out = [c for c in columns if c not in shown]
    t = Table(title=title, title_justify="left")
    for c in shown:
        t.add_column(c, no_wrap=c not in wrap, overflow="fold")
    idx = [list(columns).index(c) for c in shown]
    for r in cells:
        t.add_row(*(r[i] for i in idx))
    console.print(t)
    if left_out:
        console.print(f"({', '.join(left_out)} left out to fit; --wide shows every column)")


def cli_actor(args: argparse.Namespace) -> str:
    """Who the decisions log records for a command run from this shell."""
    import getpass

    return f"cli:{getpass.getuser()}"
