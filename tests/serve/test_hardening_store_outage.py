"""Chaos: the metadata store goes away (here: the TCP path to Postgres is cut, like a
restart) while the server answers. Keys checked recently keep working from the cache, an
unknown key gets a 503 naming the cause (it was a 500 once the 5 s key cache expired), and
everything heals when the database is back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

import pytest

from loopml.errors import AuthError, UnavailableError
from loopml.serve.access.auth import Authenticator
from loopml.store import Store

pytestmark = pytest.mark.anyio


class Cuttable:
    """A TCP relay to ``target`` on 127.0.0.1 that can be cut (every connection closed, new
    ones refused) and restored: a database that goes down and comes back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.socks.clear()

    def restore(self) -> None:
        self.up = True


async def test_keys_keep_working_while_the_store_is_down(pg_url):
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    relay = Cuttable((url.host or "127.0.0.1", url.port or 5432))
    store = Store(url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False))
    key, rec = store.keys.create("predictor", actor="test")
    other, _ = store.keys.create("predictor", actor="test")
    auth = Authenticator(store.keys.authenticate, ttl=0.1, stale_grace=60)
    assert (await auth.acheck(f"Bearer {key}", "predictor")).prefix == rec["prefix"]
    relay.cut()
    await asyncio.sleep(0.3)  # past the cache's ttl: the next check asks the store
    t0 = time.monotonic()
    for _ in range(5):
        assert (await auth.acheck(f"Bearer {key}", "predictor")).prefix == rec["prefix"]
    with pytest.raises(UnavailableError, match="cannot be reached") as err:
        await auth.acheck(f"Bearer {other}", "predictor")  # never seen: cannot be verified
    assert err.value.http_status == 503
    assert time.monotonic() - t0 < 30
    relay.restore()
    store.keys.revoke(rec["id"], actor="test")
    await asyncio.sleep(0.3)
    with pytest.raises(AuthError):
        await auth.acheck(f"Bearer {key}", "predictor")  # back: the revocation holds
    assert (await auth.acheck(f"Bearer {other}", "predictor")).role == "predictor"
    store.close()
