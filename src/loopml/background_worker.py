"""``loopml serve``'s background process: the monitor and the controller in one spawned child
of the server, at a lower CPU priority (``serve.background: process``, the default).

Why not threads of the server: a monitoring pass is seconds of pandas and pyarrow work that
holds the GIL, and the event loop then waits for the GIL at every release (the convoy
effect). Measured in the issue 14 soak (1,400 req/s, server pinned to one core): with the
monitor in a thread the client p99 went from 34 to 551 ms after its first pass and the
server grew from 455 to 656 MB in two minutes; without monitoring passes the p99 stayed at
33-43 ms. In a process of its own, a pass shares only the CPU, and ``os.nice`` lets the
kernel give the server the CPU first.

:mod:`multiprocessing` starts the process; what is written here is what it does not do: the
child ends when the server dies (:func:`loopml.logs.compaction.exit_with_parent`), stops its
two threads when the server closes a pipe (the controller gives up leadership, so another
replica takes over at once) and gives memory back after every pass (:mod:`loopml.memory`);
the server says in its log when the child died and starts a new one (a second later, backing
off to :data:`RESTART_EVERY` seconds while children keep dying at their start:
:func:`restart_delay`), which ends the dead child's leases at once: a dead child never stops
the loop silently, nor for the length of a lease.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import multiprocessing as mp
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from loopml.config import Config
from loopml.logs.compaction import lower_priority
from loopml.logs.layout import log_location
from loopml.logs.logreader import LiveSegments
from loopml.logs.parts import LiveLog
from loopml.memory import Budget, release_memory, use_jemalloc
from loopml.store import Store

log = logging.getLogger("loopml.serve")

RESTART_FIRST = 1.0  # seconds from a child's death to the start of the next (see restart_delay)
RESTART_EVERY = 30.0  # ... at most, for a child that keeps dying within this of its start
RECYCLED = 3  # the exit code of a child that handed over because its memory grew (Budget)
STOP_TIMEOUT = 60.0  # how long the server waits for the child to stop before killing it
WATCH_EVERY = 1.0  # how often the server looks whether the child is alive
LOGGERS = ("loopml.serve", "loopml.monitor", "loopml.control")  # what the child logs under
LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # the server's own lines
# What monitoring passes import lazily (``loopml --help`` stays fast): the drift check's
# classifier (stats/multivariate.py), the calibration of estimated performance
# (stats/calibration.py), SciPy's tests (stats/distance.py). Imported when the process starts,
# so a process that lives as long as the server is warm before its first pass: in the issue 14
# soak their first use, minutes in, added ~20 MB that looked like growth.
PRELOAD = ("sklearn.ensemble", "sklearn.model_selection", "sklearn.isotonic", "scipy.stats")


def monitor_live(cfg: Config) -> LiveLog:
    """The monitor's reader of this machine's log segments not compacted yet (given by the
    processes that run next to a server: ``loopml serve`` and ``loopml monitor``)."""
    return LiveSegments(log_location(cfg))


# -- the child ------------------------------------------------------------------------------


def run_background(
    cfg: Config,
    stop: Connection,
    parent: int,
    nice: int,
    levels: dict[str, int],
    predecessor: int | None = None,
    handover: str | None = None,
) -> None:
    """The child's main (spawn imports it by name): the monitor's loop and the controller's
    in two threads until ``stop`` is readable (the server closed its end, or died) or
    SIGTERM, ``nice`` lower in CPU priority than the server, logging on stderr at the
    server's ``levels``; ends itself if ``parent`` dies. ``predecessor``: the pid of the
    child this one replaces, dead: the leases it held run out at once (:func:`_take_over`).

    ``stop`` is a pipe rather than a :class:`multiprocessing.Event`: a child killed while
    it held the event's lock (inside ``wait``) would leave the server blocked for good in
    ``set`` (seen here with ``kill -9`` of the child).

    When its memory after a pass grew past ``serve.background_max_growth``
    (:class:`loopml.memory.Budget`) the child stops its threads, writes what its monitoring
    passes kept (:func:`loopml.monitor.changes.save`) to ``handover`` and exits with
    :data:`RECYCLED`; the server starts a fresh child at once, which reads that file, so its
    first pass looks only at what changed.
    """
    from loopml.control.controller import Controller
    from loopml.data.sources import add_project_path
    from loopml.logs.compaction import exit_with_parent
    from loopml.monitor import changes
    from loopml.monitor.monitor_service import _loop

    exit_with_parent(parent)
    if nice:  # the server lowered it at our start already, where it may (lower_priority)
        lower_priority(0, min(19, os.getpriority(os.PRIO_PROCESS, parent) + nice))
    use_jemalloc()
    # Ctrl-C reaches the whole process group: the server stops us (``stop``) once it stopped
    # serving. A SIGTERM sent to us stops us as gracefully (leadership given up).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    terminated: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _: terminated.append(signum))
    _log_to_stderr(levels)
    add_project_path(cfg.root)
    halt, spent = threading.Event(), threading.Event()
    budget = Budget(cfg.serve.background_max_growth)

    def after(first: bool) -> None:
        _release_memory()
        if budget.spent(first):
            spent.set()

    if handover:
        changes.load(handover)
    monitor_store, controller_store = Store(cfg.store_url), Store(cfg.store_url)
    if predecessor is not None:
        _take_over(monitor_store, predecessor)
    controller = Controller(cfg, controller_store)
    threads = [
        (
            monitor_store,
            threading.Thread(
                target=_loop,
                args=(cfg, monitor_store, halt, monitor_live(cfg), lambda: after(True)),
                name="loopml-monitor",
                daemon=True,
            ),
        ),
        (
            controller_store,
            threading.Thread(
                target=controller.run_forever,
                args=(halt,),
                kwargs={"after": lambda: after(False)},
                name="loopml-controller",
                daemon=True,
            ),
        ),
    ]
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    # what is loaded now lives as long as the process: keep it out of the collections that
    # follow every pass
    gc.collect()
    gc.freeze()
    for _, thread in threads:
        thread.start()
    while not stop.poll(0.5) and not terminated and not spent.is_set():
        pass
    halt.set()
    deadline = time.monotonic() + STOP_TIMEOUT - 10
    for store, thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if not thread.is_alive():  # one still in a pass (a retraining) ends with the process
            store.close()
    if spent.is_set() and not terminated and not stop.poll(0):
        if handover:
            changes.save(handover)
        log.info("Background process %s hands over to a fresh one: %s.", os.getpid(), budget)
        sys.exit(RECYCLED)


def _release_memory() -> None:
    """:func:`loopml.memory.release_memory` after a pass, which must not end the loop."""
    try:
        release_memory()
    except Exception:
        log.exception("Giving memory back after a pass failed; the loop goes on.")


def _take_over(store: Store, pid: int) -> None:
    """Let the leases of the dead child ``pid`` (leadership, a monitoring pass) run out now:
    on SQLite they would keep the controller and the monitor waiting 5 and 10 minutes. The
    controller then takes over as from any dead replica (its rollouts resume, a step it left
    half recorded is repaired: ``Controller._take_over``)."""
    try:
        n = store.locks.expire(f"{socket.gethostname()}:{pid}:")
    except Exception as exc:  # the store is down: the leases run out by themselves
        log.warning("Could not end the leases of background process %s: %s", pid, exc)
        return
    if n:
        log.info("Ended %d lease(s) held by background process %s, which died.", n, pid)


def _log_to_stderr(levels: dict[str, int]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LINE_FORMAT))
    for name, level in levels.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


# -- the server's side ----------------------------------------------------------------------


def restart_delay(quick_deaths: int) -> float:
    """Seconds from a child's death to the start of the next: :data:`RESTART_FIRST` after a
    child that ran a while (``quick_deaths`` 0: an out-of-memory kill after hours, say, whose
    monitoring gap should be short), doubling for each child in a row that died within
    :data:`RESTART_EVERY` of its start (a crash at start), up to :data:`RESTART_EVERY`: 1, 1, 2,
    4, 8, 16, 30, 30 s... as supervisors back off a crash loop (Kubernetes' CrashLoopBackOff,
    systemd's ``RestartSec`` with ``StartLimitBurst``)."""
    return min(RESTART_EVERY, RESTART_FIRST * 2 ** max(0, quick_deaths - 1))


class BackgroundProcess:
    """The background process of one server: started, watched (:meth:`check`), started
    again when it died, stopped."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._context = mp.get_context("spawn")
        self._stop: Connection | None = None  # the server's end of the child's stop pipe
        self._stopping = False
        self.process: BaseProcess | None = None
        self.started = 0  # how many children were started
        # where a child that hands over leaves what its monitoring passes kept
        self.handover = os.path.join(tempfile.gettempdir(), f"loopml-background-{os.getpid()}.json")
        self._started_at = 0.0
        self._reported = False  # the current child's death is in the log
        self._recycled = False  # ... and it was a handover
        self._restart_at = 0.0  # when the next child starts (time.monotonic)
        self._quick_deaths = 0  # children in a row that died within RESTART_EVERY of their start

    def start(self, recycled: bool = False) -> None:
        """Start a child; returns at once (the child imports and connects on its own)."""
        levels = {name: logging.getLogger(name).getEffectiveLevel() for name in LOGGERS}
        nice = self.cfg.serve.background_nice
        theirs, ours = self._context.Pipe(duplex=False)
        before = self.process.pid if self.process is not None else None
        process = self._context.Process(
            target=run_background,
            args=(self.cfg, theirs, os.getpid(), nice, levels, before, self.handover),
            name="loopml-background",
        )
        try:
            process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child has its own copy
        if nice and process.pid:  # at once: its imports (a second of CPU) run lower too
            lower_priority(process.pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice))
        if self._stop is not None:
            self._stop.close()
        self._stop = ours
        self.process, self._started_at, self._reported = process, time.monotonic(), False
        self.started += 1
        if recycled:
            log.info(
                "Started background process %s in place of one that handed over (its memory "
                "grew past serve.background_max_growth).",
                process.pid,
            )
        elif self.started == 1:
            log.info(
                "The monitor and the controller run in background process %s (nice +%d).",
                process.pid,
                nice,
            )
        else:
            log.warning(
                "Started a new background process (pid %s, nice +%d): monitoring and "
                "controller passes resume.",
                process.pid,
                nice,
            )

    def check(self) -> None:
        """If the child died: say so once, and start a new one :func:`restart_delay` s after
        its death; at once if it handed over (:data:`RECYCLED`)."""
        process = self.process
        if process is None or self._stopping or process.is_alive():
            return
        now = time.monotonic()
        if not self._reported:
            self._reported = True
            self._recycled = process.exitcode == RECYCLED
            if self._recycled:  # a handover, logged by the child itself
                self._restart_at = now
            else:
                lived = now - self._started_at
                self._quick_deaths = self._quick_deaths + 1 if lived < RESTART_EVERY else 0
                delay = restart_delay(self._quick_deaths)
                self._restart_at = now + delay
                log.error(
                    "The background process (pid %s: the monitor and the controller) died with %s "
                    "after %.0f s: no monitoring passes and no controller passes (rollouts, "
                    "retraining, retirement) run until it is back; starting a new one in %.0f s. "
                    "An error of its own would be above; SIGKILL is often the kernel's "
                    "out-of-memory killer.",
                    process.pid,
                    _exit_text(process.exitcode),
                    lived,
                    delay,
                )
        if now < self._restart_at:
            return
        try:
            self.start(self._recycled)
        except Exception:  # e.g. no memory or process slots left: try again later
            self._restart_at = time.monotonic() + RESTART_EVERY
            log.exception(
                "Starting a new background process failed; retrying in %.0f s.", RESTART_EVERY
            )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Ask the child to stop (it finishes its passes and gives up leadership) and wait
        ``timeout`` s for it, then end it."""
        self._stopping = True
        if self._stop is not None:
            self._stop.close()  # the child reads end-of-file
        process = self.process
        if process is None:
            return
        process.join(timeout)
        if process.is_alive():  # SIGTERM would only ask it to stop again (see run_background)
            log.warning(
                "The background process (pid %s) did not stop within %.0f s; killing it.",
                process.pid,
                timeout,
            )
            process.kill()
            process.join(10)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


@contextlib.asynccontextmanager
async def background_service(cfg: Config) -> AsyncIterator[BackgroundProcess]:
    """For ``loopml.server.SERVICES``: the background process while the context is open,
    watched from the event loop; stopped off the loop when the context closes."""
    import asyncio

    background = BackgroundProcess(cfg)
    background.start()

    async def watch() -> None:
        while True:
            await asyncio.sleep(WATCH_EVERY)
            background.check()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        yield background
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await asyncio.to_thread(background.stop)


@contextlib.contextmanager
def background_process(cfg: Config) -> Iterator[BackgroundProcess]:
    """The same for a process without an event loop (the supervisor of ``--workers N``):
    watched from a thread."""
    background = BackgroundProcess(cfg)
    background.start()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(WATCH_EVERY):
            background.check()

    watcher = threading.Thread(target=watch, name="loopml-background-watch", daemon=True)
    watcher.start()
    try:
        yield background
    finally:
        done.set()
        watcher.join()
        background.stop()
