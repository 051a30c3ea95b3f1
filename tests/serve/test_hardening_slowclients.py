"""Issue 14 defect 8: slowloris headers, trickled bodies and idle connections are bounded
(300 such connections were held open for 77 s and more). Real uvicorn on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import time

import httpx
import serve_helpers as h

from loopml.serve import create_app
from loopml.serve.http.slowclients import uvicorn_options
from loopml.server import serve_in_thread


@contextlib.contextmanager
def bounded_server(settings, **bounds):
    serve = settings.serve.model_copy(update=bounds)
    bg = serve_in_thread(create_app(settings), timeout=30, **uvicorn_options(serve))
    try:
        yield bg.url
    finally:
        bg.stop(30)


def _open(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.settimeout(0.05)
    return s


def closed_by_server(s: socket.socket) -> bool:
    try:
        return s.recv(1024) == b""
    except TimeoutError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def trickle(s: socket.socket, data: bytes, every: float, until: float) -> float | None:
    """Send ``data`` one byte every ``every`` seconds; the time the server closed, or None."""
    t0 = time.monotonic()
    for byte in data:
        if time.monotonic() - t0 > until:
            return None
        try:
            s.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - t0
        deadline = time.monotonic() + every
        while time.monotonic() < deadline:
            if closed_by_server(s):
                return time.monotonic() - t0
    return None


def test_slow_headers_bodies_and_idle_connections_are_closed(settings, keys):
    head = (
        b"POST /v1/endpoints/credit/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nX-Slow: " + b"a" * 200
    )
    with bounded_server(settings, header_timeout=1.0, body_timeout=1.5, idle_timeout=1.0) as url:
        # slowloris: headers one byte every 0.2 s
        s = _open(url)
        took = trickle(s, head, 0.2, until=10)
        assert took is not None and took < 3, took
        # a connection that never sends anything
        s = _open(url)
        t0 = time.monotonic()
        while not closed_by_server(s) and time.monotonic() - t0 < 10:
            pass
        assert time.monotonic() - t0 < 3
        # complete headers, then a body one byte every 0.2 s
        s = _open(url)
        s.sendall(
            b"POST /v1/endpoints/credit/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 500\r\n"
            + f"Authorization: Bearer {keys['predictor']}\r\n\r\n".encode()
        )
        took = trickle(s, b"{" + b" " * 498 + b"}", 0.2, until=10)
        assert took is not None and took < 4, took
        # ordinary clients are served, also over a kept-alive connection
        with httpx.Client(base_url=url, headers=h.bearer(keys["predictor"])) as c:
            for i in range(3):
                r = c.post("/v1/endpoints/credit/predict", json={"rows": [h.row(i)]})
                assert r.status_code == 200, r.text


def test_idle_connections_past_the_cap_make_room_for_new_ones(settings, keys):
    with bounded_server(settings, header_timeout=30.0, max_connections=20) as url:
        idle = [_open(url) for _ in range(60)]
        time.sleep(0.3)
        open_now = sum(not closed_by_server(s) for s in idle)
        assert open_now <= 20, open_now
        r = httpx.post(
            f"{url}/v1/endpoints/credit/predict",
            json={"rows": [h.row(0)]},
            headers=h.bearer(keys["predictor"]),
        )
        assert r.status_code == 200, r.text
        for s in idle:
            s.close()
