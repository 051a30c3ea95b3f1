"""The Ray engine (``pip install 'loopml[ray]'``): tasks and actors on a Ray cluster.

``RAY_ADDRESS`` set: connect to that cluster (Ray reads the variable itself). Otherwise a
local Ray starts with ``cpus`` CPUs (default: all of this machine's), without its dashboard,
its workers as nice as this process (Ray's default lowers their priority).
Items are submitted lazily with at most ``2 x workers`` in flight, so a long stream of items
never piles up in Ray's object store; results come back in the order of the items, which is
what lets the driver merge them exactly as the local engine would.

Workers must import loopml: a local Ray's workers inherit this process's environment
(``PYTHONPATH`` included); a remote cluster needs loopml installed on its nodes. What
:meth:`RayEngine.map` sends may name the project's own modules (the user's training function,
the classes of a model, ``train.MyModel``), which loopml imports from the project folder it
puts on ``sys.path`` (:func:`loopml.data.sources.add_project_path`), not from the environment.
So those modules travel by value (cloudpickle's ``register_pickle_by_value``): a worker that
ran another project's ``train.py`` before, or an older copy of this one, never uses it. The
project folders go on the worker's ``sys.path`` too, for modules the work imports later. The
work runs under the driver's BLAS/OpenMP thread counts, so that it computes as the driver would.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any, TypeVar

from loopml.engines import Factory
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


def _project_paths() -> list[str]:
    """Folders on this process's import path that a worker lacks: neither in the Python
    installation nor on ``PYTHONPATH`` (which a local Ray's workers inherit)."""
    inherited = (sys.prefix, sys.base_prefix, sys.exec_prefix, *_pythonpath())
    return [p for p in sys.path if p and os.path.isabs(p) and not _under(p, inherited, itself=True)]


def _pythonpath() -> list[str]:
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


def _under(path: str, folders: Iterable[str], *, itself: bool = False) -> bool:
    return any(
        (itself and path == f) or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders
    )


def _project_modules(paths: list[str]) -> list[ModuleType]:
    """The modules imported from ``paths`` under their own names (loopml itself and the main
    script excepted: cloudpickle sends ``__main__``'s objects by value anyway)."""
    inherited = (sys.prefix, sys.base_prefix, sys.exec_prefix, *_pythonpath())
    found = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if (
            isinstance(file, str)
            and name == getattr(module, "__name__", None)
            and name.split(".")[0] not in ("loopml", "__main__")
            and _under(file, paths)
            and not _under(file, inherited)
        ):
            found.append(module)
    return found


Packed = tuple[list[str], dict[str, int], bytes]


def _pack(ray: Any, fn: Callable[..., Any], shared: Any) -> Packed:
    """``(project folders, thread caps, fn and shared pickled)``, the project's modules by
    value; the caps are this process's BLAS/OpenMP threads per library (``loopml run`` sets
    them: ``loopml.train.threads``), since with another count a library may sum in another
    order, and a refit on a worker would no longer equal the one done here."""
    from threadpoolctl import threadpool_info

    paths = _project_paths()
    caps = {lib["prefix"]: int(lib["num_threads"]) for lib in threadpool_info()}
    modules = _project_modules(paths)
    for m in modules:
        ray.cloudpickle.register_pickle_by_value(m)
    try:
        return paths, caps, ray.cloudpickle.dumps((fn, shared))
    finally:
        for m in modules:
            ray.cloudpickle.unregister_pickle_by_value(m)


def _unpacked(item: Any, packed: Packed) -> Any:
    """A task: the project folders on ``sys.path``, ``fn`` and ``shared`` unpickled from
    ``packed`` (Ray would unpickle its arguments before any code of ours could run), then
    ``fn(item, shared)`` under the driver's thread caps."""
    import ray.cloudpickle
    from threadpoolctl import threadpool_limits

    paths, caps, blob = packed
    sys.path[:0] = [p for p in paths if p not in sys.path]
    fn, shared = ray.cloudpickle.loads(blob)
    with threadpool_limits(limits=caps or None):
        return fn(item, shared)


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
                opts.update(
                    num_cpus=cpus or os.cpu_count() or 1,
                    include_dashboard=False,
                    # Ray makes its workers 15 nicer than the driver, to keep the driver
                    # responsive; here the workers do the work and the driver waits. On a busy
                    # machine (load 12 on 2 cores) a training of 0.5 CPU-s then took 2.4-4.7 s
                    # on a worker against 1.5-1.9 s here; as nice as here, 1.1-3.2 s.
                    _system_config={"worker_niceness": 0},
                )
            try:
                ray.init(address=address, **opts)
            except Exception as exc:  # Ray raises plain Exception too (a node's startup timeout)
                raise LoopmlError(
                    f"Could not start or reach Ray ({'RAY_ADDRESS=' + address if address else 'local'}): "
                    f"{exc}. Check the cluster address, or unset RAY_ADDRESS to run Ray locally; "
                    "a local Ray that timed out starting may start on a less busy machine (or "
                    "choose --engine local).",
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
        task = self.ray.remote(num_cpus=1)(_unpacked)
        packed = self.ray.put(_pack(self.ray, fn, shared))
        return self._ordered(task.remote(item, packed) for item in items)

    def map_actors(
        self, factory: Factory[R], args: tuple[Any, ...], items: Iterable[Any]
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
