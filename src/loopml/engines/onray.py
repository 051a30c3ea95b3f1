"""The Ray engine (``pip install 'loopml[ray]'``): tasks and actors on a Ray cluster.

``RAY_ADDRESS`` set: connect to that cluster (Ray reads the variable itself). Otherwise a
local Ray starts with ``cpus`` CPUs (default: all of this machine's), without its dashboard.
Items are submitted lazily with at most ``2 x workers`` in flight, so a long stream of items
never piles up in Ray's object store; results come back in the order of the items, which is
what lets the driver merge them exactly as the local engine would.

Workers must import loopml: a local Ray's workers inherit this process's environment
(``PYTHONPATH`` included); a remote cluster needs loopml installed on its nodes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from loopml.errors import LoopmlError, UsageError

R = TypeVar("R")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(
            "The ray engine needs Ray: pip install 'loopml[ray]' (or choose --engine local).",
            field="engine",
        ) from None
    return ray


class _Worker:
    """A Ray actor's state: ``factory(*args)`` built once, called once per item."""

    def __init__(self, factory: Callable[..., Callable[[Any], Any]], args: tuple[Any, ...]) -> None:
        self.fn = factory(*args)

    def call(self, item: Any) -> Any:
        return self.fn(item)


class RayEngine:
    name = "ray"

    def __init__(self, *, cpus: int | None = None) -> None:
        ray = self.ray = _ray()
        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS") or None
            opts: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
            if address is None:
                opts.update(num_cpus=cpus or os.cpu_count() or 1, include_dashboard=False)
            try:
                ray.init(address=address, **opts)
            except (ConnectionError, RuntimeError) as exc:
                raise LoopmlError(
                    f"Could not start or reach Ray ({'RAY_ADDRESS=' + address if address else 'local'}): "
                    f"{exc}. Check the cluster address, or unset RAY_ADDRESS to run Ray locally.",
                    field="engine",
                ) from exc
        total = int(ray.cluster_resources().get("CPU", 1))
        self.cpus = max(1, min(cpus or total, total))

    def _get(self, ref: Any) -> Any:
        """The result of ``ref``; a worker's LoopmlError is raised here as itself, so the CLI
        prints its message (not Ray's wrapper with the worker's traceback)."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, LoopmlError):
                raise cause from None
            raise

    def _ordered(self, refs: Iterable[Any]) -> Iterator[Any]:
        window: deque[Any] = deque()
        limit = 2 * self.cpus
        for ref in refs:
            window.append(ref)
            if len(window) >= limit:
                yield self._get(window.popleft())
        while window:
            yield self._get(window.popleft())

    def map(
        self, fn: Callable[[Any, Any], R], items: Iterable[Any], *, shared: Any = None
    ) -> Iterator[R]:
        task = self.ray.remote(num_cpus=1)(fn)
        shared_ref = self.ray.put(shared)
        return self._ordered(task.remote(item, shared_ref) for item in items)

    def map_actors(
        self,
        factory: Callable[..., Callable[[Any], R]],
        args: tuple[Any, ...],
        items: Iterable[Any],
    ) -> Iterator[R]:
        ray = self.ray
        actor_class: Any = ray.remote(num_cpus=1)(_Worker)
        actors = [actor_class.remote(factory, args) for _ in range(self.cpus)]
        try:
            yield from self._ordered(
                actors[i % len(actors)].call.remote(item) for i, item in enumerate(items)
            )
        finally:
            for a in actors:
                ray.kill(a)

    def close(self) -> None:
        """Leave Ray running: a later command in this process reuses it (tests do)."""
