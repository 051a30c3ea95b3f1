"""The local engine: every item in this process, one after the other (the default)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from loopml.engines import Factory
from loopml.types import in_process

R = TypeVar("R")


class LocalEngine:
    name = "local"
    cpus = 1

    def map(
        self, fn: Callable[[Any, Any], R], items: Iterable[Any], *, shared: Any = None
    ) -> Iterator[R]:
        return in_process(fn, items, shared=shared)

    def map_actors(
        self, factory: Factory[R], args: tuple[Any, ...], items: Iterable[Any]
    ) -> Iterator[R]:
        worker = factory(*args)
        for item in items:
            yield worker(item)

    def close(self) -> None:
        pass
