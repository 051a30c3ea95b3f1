"""Helpers for the HTTP tests: a trained project (trained once per session through the real
``loopml run`` pipeline, copied per test), API keys per role, the in-process client and the
real server on 127.0.0.1 (in a thread, or as a ``loopml serve`` subprocess)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from tests.conftest import make_project

N_NUM = 8  # few features: permutation importance at registration and every request cost less
NAMES = [f"f{i}" for i in range(N_NUM)]

TRAIN_PY = """
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


def train(X, y, params, seed=0):
    cats = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    # unknown="error" makes a version whose predict raises on unseen categories
    enc = OneHotEncoder(handle_unknown=params.get("unknown", "ignore"))
    pre = ColumnTransformer([("cat", enc, cats)], remainder="passthrough")
    clf = LogisticRegression(C=params.get("C", 1.0), max_iter=500)
    return Pipeline([("pre", pre), ("clf", clf)]).fit(X, y)
"""

CONFIG = """\
project: servetest
data: {train: data/train.parquet, target: label, id: id}
model: {name: servetest, train: train.py:train}
gates: {champion: {blocking: false}}
deploy: {endpoint: credit, unseen_categories: flag}
"""

# versions trained by the session fixture, by what they are for
VERSION_PARAMS = {
    "champion": {"C": 1.0},
    "canary": {"C": 0.05},
    "failing_shadow": {"C": 0.5, "unknown": "error"},
    "spare": {"C": 2.0},
}


def frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_NUM))
    cat = rng.choice(["a", "b", "c"], size=n)
    logit = X[:, 0] - X[:, 1] + np.where(cat == "a", 0.5, -0.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    out = pd.DataFrame(X, columns=NAMES)
    out["cat"] = cat
    out["id"] = np.arange(n)
    out["label"] = y
    return out


def train_project(root: Path) -> dict[str, int]:
    """Write the project under ``root`` and train one version per VERSION_PARAMS entry."""
    from loopml.config import load_config
    from loopml.store import Store
    from loopml.train import run

    make_project(root, config=CONFIG, frame=frame(), train_py=TRAIN_PY)
    cfg = load_config(root)
    store = Store(cfg.store_url)
    ids = {}
    for name, params in VERSION_PARAMS.items():
        cfg.model.params = dict(params)
        result = run(cfg, store=store)
        assert result.version is not None and result.passed, name
        ids[name] = int(result.version["id"])
    store.close()
    return ids


def row(i: int = 0, cat: str = "a") -> dict[str, Any]:
    rng = np.random.default_rng(i)
    out: dict[str, Any] = dict(zip(NAMES, rng.normal(size=N_NUM).round(4).tolist(), strict=True))
    out["cat"] = cat
    return out


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def tuned(settings: Any, *, serve: dict | None = None, deploy: dict | None = None) -> Any:
    """``settings`` with some of its serve and deploy options changed."""
    import dataclasses

    return dataclasses.replace(
        settings,
        serve=settings.serve.model_copy(update=serve or {}),
        deploy=settings.deploy.model_copy(update=deploy or {}),
    )


def copy_project(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


@contextlib.asynccontextmanager
async def serving(settings: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """The app with its lifespan running, and an httpx client over ASGITransport."""
    from loopml.serve import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client


async def predict_each(client: httpx.AsyncClient, key: str, bodies: Any) -> list[httpx.Response]:
    """One predict request to endpoint 'credit' per list of rows in ``bodies``, all at once."""

    return await asyncio.gather(
        *(
            client.post("/v1/endpoints/credit/predict", json={"rows": rows}, headers=bearer(key))
            for rows in bodies
        )
    )


async def off_path_done(app: Any, tries: int = 100) -> None:
    """Wait (``tries`` x 20 ms at most) for the shadow and paired answers the runtime computes
    off the response path."""

    for _ in range(tries):
        if not app.state.runtime.off_path.in_flight:
            return
        await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def thread_server(settings: Any) -> Iterator[tuple[str, Any]]:
    """The real server (uvicorn, uvloop + httptools) on 127.0.0.1 in a thread."""
    from loopml.serve import create_app
    from loopml.server import serve_in_thread

    app = create_app(settings)
    bg = serve_in_thread(app, timeout=30)
    try:
        yield bg.url, app
    finally:
        bg.stop(30)


def start_subprocess(project: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """``loopml serve`` as a child process; returns once /v2/health/ready answers 200."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loopml.cli",
            "-c",
            str(project),
            "serve",
            "--port",
            str(port),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"loopml serve exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("loopml serve did not become ready in 60 s")


async def asgi_post(app: Any, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """One POST straight into the ASGI app: an in-process client without httpx's per-request
    cost (~2 ms here), for the tests that send thousands of requests."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    out: dict[str, Any] = {"body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "headers": [
            (k.lower().encode(), v.encode())
            for k, v in {
                **headers,
                "content-type": "application/json",
                "content-length": str(len(body)),
            }.items()
        ],
    }
    await app(scope, receive, send)
    return out["status"], out["body"]


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
