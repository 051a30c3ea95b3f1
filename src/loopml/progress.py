"""Progress reporting for long steps. The library reports through a ``Steps`` object; the
CLI passes one that draws with rich, tests and the server pass ``NullSteps``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Steps(Protocol):
    def step(self, title: str) -> Any: ...  # a context manager

    def note(self, text: str) -> None: ...


class NullSteps:
    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        yield

    def note(self, text: str) -> None:
        pass


class ConsoleSteps:
    """Numbered steps with a spinner while each runs and its time when done (rich)."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True, highlight=False)
        self.n = 0

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.n += 1
        t = time.perf_counter()
        with self.console.status(f"[bold]{self.n}. {title}[/] ..."):
            try:
                yield
            except BaseException:
                self.console.print(
                    f"[red]✗[/] {self.n}. {title} [dim]({time.perf_counter() - t:.2f} s)[/]"
                )
                raise
        self.console.print(
            f"[green]✓[/] {self.n}. {title} [dim]({time.perf_counter() - t:.2f} s)[/]"
        )

    def note(self, text: str) -> None:
        self.console.print(f"   {text}")
