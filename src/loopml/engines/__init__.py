"""Where heavy work runs: ``local`` (this process, the default) or ``ray`` (``loopml[ray]``).

An engine knows nothing of models, logs or profiles: it maps a function over items and hands
the results back in order, so the caller merges them on the driver (profiles with ``+``,
scored parts by writing them). Two shapes cover loopml's work:

- :meth:`Engine.map`: a stateless function per item (a block of Parquet parts to profile).
- :meth:`Engine.map_actors`: a stateful worker built once per process and called per item (a
  scorer that loads its model once, then scores chunk after chunk).

Both keep at most a few items in flight per CPU, so memory stays bounded however many items
there are. Ray is imported only when the ``ray`` engine is chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from loopml.errors import UsageError

R = TypeVar("R")
Factory = Callable[..., Callable[[Any], R]]  # builds a worker's state: item -> result

ENGINES = ("local", "ray")


class Engine(Protocol):
    name: str
    cpus: int

    def map(
        self, fn: Callable[[Any, Any], R], items: Iterable[Any], *, shared: Any = None
    ) -> Iterator[R]:
        """``fn(item, shared)`` for every item; results in the order of ``items``."""
        ...

    def map_actors(
        self, factory: Factory[R], args: tuple[Any, ...], items: Iterable[Any]
    ) -> Iterator[R]:
        """``worker = factory(*args)`` once per worker process, then ``worker(item)`` per item;
        results in the order of ``items``."""
        ...

    def close(self) -> None: ...


def get_engine(name: str | None = None, *, cpus: int | None = None) -> Engine:
    """The engine called ``name`` (default ``local``). ``cpus`` caps the CPUs it uses.

    For ``ray``, ``RAY_ADDRESS`` (the environment variable Ray itself reads) points at an
    existing cluster; without it a local Ray is started with ``cpus`` CPUs.
    """
    name = name or "local"
    if cpus is not None and cpus < 1:
        raise UsageError(f"--cpus must be at least 1; got {cpus}.", field="cpus")
    if name == "local":
        from loopml.engines.local import LocalEngine

        return LocalEngine()
    if name == "ray":
        from loopml.engines.onray import RayEngine

        return RayEngine(cpus=cpus)
    raise UsageError(
        f"Unknown engine {name!r}; choose one of {', '.join(ENGINES)}.", field="engine"
    )
