"""``loopml serve``: the process that runs the serving app and the dashboard, with the monitor
and the controller beside it. This is the top floor: it may import every stage; no stage
imports it.

How the other parts join (the hook list):

- :data:`MOUNTS` — functions ``(cfg) -> (path, asgi_app)``; each app is mounted under its
  path on the serving app (the dashboard: ``("/", ui_app)``; API routes match first).
- :data:`SERVICES` — functions ``(cfg) -> async context manager``; each is entered after the
  serving app has started (models loaded, log open) and left before it stops: the monitor's
  and the controller's loops, in one child process at lower CPU priority
  (:mod:`loopml.background_worker`, ``serve.background: process``, the default: a monitoring pass
  holding this process's GIL would stall requests) or in two threads of this process
  (``serve.background: thread``, for embedding and debugging).

Requests are served by one uvicorn worker with uvloop + httptools (docs/design/measurements.md,
"Serving": scale by running more such processes; they share the store and the log
directory). ``--workers N`` does that on one machine: uvicorn's supervisor binds the port once
and starts N worker processes sharing it (the kernel spreads the connections), each building
the app from the project's loopml.yaml (:func:`worker_app`) and writing its own log segments
(their names carry the pid); a worker that dies is restarted by the supervisor. With
``serve.background: process`` the supervisor runs the one background process of all of them;
with ``thread`` each worker runs its own threads, and one controller acts at a time among them
(the leader lock) as the monitor's lease lets one pass run at a time. uvicorn's access log is
off: the app writes its own structured JSON access log (``loopml.access``).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TextIO

from starlette.applications import Starlette
from starlette.types import ASGIApp

from loopml.background_worker import (
    LINE_FORMAT,
    background_process,
    background_service,
    monitor_live,
)
from loopml.config import Config
from loopml.control.loop_service import controller_service
from loopml.errors import UsageError
from loopml.monitor.monitor_service import monitor_service
from loopml.serve.http.accesslog import JSONLinesHandler
from loopml.serve.http.application import create_app
from loopml.serve.http.slowclients import uvicorn_options
from loopml.serve.settings import Settings
from loopml.ui import mount as ui_mount


def _background(cfg: Config) -> AbstractAsyncContextManager[Any]:
    """The monitor and the controller in one child process (``serve.background: process``)."""
    if cfg.serve.background != "process":
        return contextlib.nullcontext()
    return background_service(cfg)


def _monitor(cfg: Config) -> AbstractAsyncContextManager[Any]:
    """The monitor in a thread of this process (``serve.background: thread``)."""
    if cfg.serve.background != "thread":
        return contextlib.nullcontext()
    return monitor_service(cfg, live=monitor_live(cfg))


def _controller(cfg: Config) -> AbstractAsyncContextManager[Any]:
    """The controller in a thread of this process (``serve.background: thread``)."""
    if cfg.serve.background != "thread":
        return contextlib.nullcontext()
    return controller_service(cfg)


MOUNTS: list[Callable[[Config], tuple[str, ASGIApp]]] = [ui_mount]
SERVICES: list[Callable[[Config], AbstractAsyncContextManager[Any]]] = [
    _background,
    _monitor,
    _controller,
]


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only to them (``localhost``)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def compose(cfg: Config, settings: Settings, *, background: bool = True) -> Starlette:
    """The one-process app: serving, plus every mount and service in the hook lists
    (``background`` False: without the background process, which someone else runs)."""
    app = create_app(settings)
    for mount in MOUNTS:
        path, sub = mount(cfg)
        app.router.mount(path, app=sub)
    services = [s for s in SERVICES if background or s is not _background]
    if services:
        inner = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(a: Any) -> AsyncIterator[None]:
            async with inner(a), contextlib.AsyncExitStack() as stack:
                for service in services:
                    await stack.enter_async_context(service(cfg))
                yield

        app.router.lifespan_context = lifespan
    return app


def configure_logging(access_log: bool = True) -> None:
    """JSON access lines on stderr; server messages as plain lines."""
    access = logging.getLogger("loopml.access")
    access.handlers[:] = [JSONLinesHandler(sys.stderr)] if access_log else []
    access.setLevel(logging.INFO if access_log else logging.WARNING)
    access.propagate = False
    serve_log = logging.getLogger("loopml.serve")
    if not serve_log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter(LINE_FORMAT))
        serve_log.addHandler(h)
    serve_log.setLevel(logging.INFO)
    serve_log.propagate = False


def key_hint(settings: Settings, host: str, out: TextIO) -> None:
    """With auth on and no active key, say how to create one."""
    if not settings.auth:
        return
    from loopml.store import Store

    store = Store(settings.store_url)
    try:
        active = [k for k in store.keys.list() if k["revoked_at"] is None]
    finally:
        store.close()
    if active:
        return
    where = "" if is_loopback(host) else " (this server listens beyond loopback: keep keys secret)"
    print(
        "No API key exists yet, and every route except health and /metrics needs one"
        f"{where}. Create an admin key with:\n\n    loopml keys create --role admin\n\n"
        "then send it as 'Authorization: Bearer <key>'.",
        file=out,
        flush=True,
    )


class Background:
    """A server running on a thread of this process (the demo, the tests)."""

    def __init__(self, server: Any, thread: threading.Thread, url: str) -> None:
        self.server, self.thread, self.url = server, thread, url

    def stop(self, timeout: float = 60.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve_in_thread(
    app: ASGIApp, *, host: str = "127.0.0.1", timeout: float = 60.0, **options: Any
) -> Background:
    """Run ``app`` under uvicorn (uvloop + httptools) on a free port of ``host`` in a daemon
    thread; returns once uvicorn has started (its lifespan startup has run). ``options`` go
    to uvicorn (e.g. :func:`loopml.serve.http.slowclients.uvicorn_options`)."""
    import uvicorn

    port = free_port(host)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            loop="uvloop",
            lifespan="on",
            access_log=False,
            log_level="warning",
            **{"http": "httptools", **options},
        )
    )
    thread = threading.Thread(target=server.run, name="loopml-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the server on {host}:{port} did not start within {timeout:g} s")
        time.sleep(0.02)
    return Background(server, thread, f"http://{host}:{port}")


WORKER_ENV = "LOOPML_SERVE_WORKER"


@functools.cache
def _worker_config() -> tuple[Config, dict[str, Any]]:
    from loopml.config import load_config
    from loopml.data.sources import add_project_path

    spec = json.loads(os.environ[WORKER_ENV])
    cfg = load_config(spec["config"])
    add_project_path(cfg.root)
    return cfg, spec


def worker_http(*args: Any, **kwargs: Any) -> Any:
    """uvicorn's http protocol in a ``--workers`` process: the bounded httptools protocol of
    :mod:`loopml.serve.http.slowclients`, built from the worker's loopml.yaml (a class made at run
    time cannot be sent to a spawned worker, so uvicorn is given this function's name)."""
    cfg, _ = _worker_config()
    return _worker_protocol(
        cfg.serve.header_timeout, cfg.serve.body_timeout, cfg.serve.max_connections
    )(*args, **kwargs)


@functools.cache
def _worker_protocol(header: float, body: float, connections: int) -> type:
    from loopml.serve.http.slowclients import protocol

    return protocol(header, body, connections)


def worker_app() -> Starlette:
    """The app of one ``loopml serve --workers N`` process: uvicorn calls this factory in each
    worker; what to build comes from :data:`WORKER_ENV` (set by :func:`serve`)."""
    cfg, spec = _worker_config()
    settings = Settings.from_config(cfg, auth=spec["auth"], access_log=spec["access_log"])
    sys.setswitchinterval(0.001)
    configure_logging(spec["access_log"])
    return compose(cfg, settings, background=not spec["supervisor_background"])


def serve(
    cfg: Config,
    *,
    host: str | None = None,
    port: int | None = None,
    auth: bool | None = None,
    access_log: bool = True,
    workers: int = 1,
    project: str | Path | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Run the server until SIGINT/SIGTERM; a graceful stop flushes the prediction log.
    With ``workers`` > 1 each worker process reads the project's loopml.yaml itself
    (``project``: the file or its folder, default ``cfg.root``; changes made to ``cfg`` in
    this process do not reach them)."""
    import uvicorn

    if workers < 1:
        raise UsageError(f"--workers must be 1 or more; got {workers}.", field="workers")
    host = host or cfg.serve.host
    port = port or cfg.serve.port
    auth = cfg.serve.auth if auth is None else auth
    if not auth and not is_loopback(host):
        raise UsageError(
            f"--no-auth is allowed only on a loopback host (127.0.0.1, ::1); got {host!r}. "
            "Create keys with 'loopml keys create --role ROLE' instead.",
            field="auth",
        )
    settings = Settings.from_config(cfg, auth=auth, access_log=access_log)
    # Background threads (log writer, shadows; the monitor and the controller with
    # serve.background: thread) share the GIL with the event loop; a 1 ms switch interval
    # (CPython's default is 5 ms) keeps a long one from stalling requests that wait on the
    # log writer.
    sys.setswitchinterval(0.001)
    configure_logging(access_log)
    key_hint(settings, host, out)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "lifespan": "on",
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": 10,
        **uvicorn_options(cfg.serve),  # bounds on slow and idle clients
    }
    print(
        f"loopml serving on http://{host}:{port} (auth {'on' if auth else 'OFF'}"
        + (f", {workers} worker processes" if workers > 1 else "")
        + ")",
        file=out,
        flush=True,
    )
    if workers > 1:
        # one background process for all workers, run by the supervisor (it outlives them)
        owned = cfg.serve.background == "process"
        source = Path(project) if project is not None else cfg.root
        spec = {
            "config": str(source.resolve()),
            "auth": auth,
            "access_log": access_log,
            "supervisor_background": owned,
        }
        os.environ[WORKER_ENV] = json.dumps(spec)
        options["http"] = "loopml.server:worker_http"
        with background_process(cfg) if owned else contextlib.nullcontext():
            uvicorn.run("loopml.server:worker_app", factory=True, workers=workers, **options)
        return 0
    uvicorn.run(compose(cfg, settings), workers=None, **options)
    return 0
