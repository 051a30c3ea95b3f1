"""A real S3 API server on loopback for the tests: moto's server mode
(``moto.server.ThreadedMotoServer``), a stand-in for AWS S3 or MinIO that speaks the same HTTP
API, reached through s3fs exactly as a real bucket would be (``AWS_ENDPOINT_URL``; child
processes inherit the variables).

A network failure is made by a small TCP proxy between s3fs and the server that cuts every
connection after a number of bytes, in the middle of an upload's body. The fixtures are
registered for every test by ``tests/conftest.py``."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator

import fsspec
import pytest

BUCKET = "loopml-test"
# one attempt per call, short timeouts: a failure shows at once instead of after backoffs
FAIL_FAST = {
    "skip_instance_cache": True,
    "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2, "read_timeout": 5},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    """A running S3 API server on 127.0.0.1 (moto's server mode); yields its URL."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 call otherwise

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_url, monkeypatch) -> Iterator[fsspec.AbstractFileSystem]:
    """AWS variables pointing at the server, a fresh bucket, and a direct client to check it."""
    import s3fs

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_url,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    if fs.exists(BUCKET):
        fs.rm(BUCKET, recursive=True)
    fs.mkdir(BUCKET)
    yield fs
    s3fs.S3FileSystem.clear_instance_cache()


class Proxy:
    """Forwards TCP to ``target`` on a free loopback port (``url``); subclasses decide what
    passes in each direction (:meth:`forward`: False ends the connection)."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit("//", 1)[1].split(":")
        self.target = (host, int(port))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def forward(self, data: bytes, dst: socket.socket, request: bool, sent: int) -> bool:
        dst.sendall(data)
        return True

    def _pipe(self, src: socket.socket, dst: socket.socket, request: bool) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data or not self.forward(data, dst, request, sent):
                    break
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.sock.close()


class CuttingProxy(Proxy):
    """Closes each connection after ``limit`` bytes of request (in the middle of a body)."""

    def __init__(self, target: str, limit: int) -> None:
        self.limit = limit
        self.cut = 0
        super().__init__(target)

    def forward(self, data: bytes, dst: socket.socket, request: bool, sent: int) -> bool:
        if request and sent + len(data) > self.limit:
            dst.sendall(data[: self.limit - sent])
            self.cut += 1
            return False
        dst.sendall(data)
        return True


class HoldingProxy(Proxy):
    """While :meth:`hold` is in force the server's answers wait here, so a request (an
    upload) has reached the server and is stored there while its client has not heard back
    yet: the moment between an upload and what the client does after it."""

    def __init__(self, target: str) -> None:
        self._open = threading.Event()
        self._open.set()
        super().__init__(target)

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def forward(self, data: bytes, dst: socket.socket, request: bool, sent: int) -> bool:
        # an interim "100 Continue" passes: the client then sends the body, which the
        # server stores before its final answer (the one held)
        if not request and not data.startswith(b"HTTP/1.1 100 "):
            self._open.wait()
        dst.sendall(data)
        return True

    def close(self) -> None:
        self._open.set()
        super().close()
