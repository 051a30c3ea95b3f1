"""The controller as a thread of the serving process: ``reconcile_once`` every
``serve.controller_interval`` seconds, for the life of the server.

``loopml serve`` uses it with ``serve.background: thread`` (embedding, debugging); by default
it runs ``Controller.run_forever`` in its background process instead
(``loopml.background_worker``), where a pass cannot hold the serving process's GIL. For
``loopml.server.SERVICES``: an async context manager, entered after the serving app started
and left before it stops. The thread gives up leadership when it stops, so another replica
takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

from loopml.config import Config
from loopml.control.controller import Controller
from loopml.store import Store


@contextlib.asynccontextmanager
async def controller_service(cfg: Config) -> AsyncIterator[Controller]:
    """Run the controller in a daemon thread while the context is open."""
    store = Store(cfg.store_url)
    controller = Controller(cfg, store)
    stop = threading.Event()
    thread = threading.Thread(
        target=controller.run_forever, args=(stop,), name="loopml-controller", daemon=True
    )
    thread.start()
    try:
        yield controller
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 30)
        store.close()
