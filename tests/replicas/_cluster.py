"""Helpers for the replica tests: a fresh Postgres database, N real ``loopml serve`` processes
on loopback sharing it and one artifacts folder, and Debian's nginx in front of them as the
load balancer (its own nginx.conf under tmp_path, run in the foreground as a child process).

The Postgres server is ``LOOPML_TEST_POSTGRES_URL`` or, without it, the local one on
127.0.0.1:5432 (user postgres, trust); the tests skip, saying why, when neither answers or when
nginx is not installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopml.server import free_port
from tests._helpers.process import stop, wait_or_kill
from tests._helpers.store import fresh_pg_database
from tests.e2e import _loop as L

LOOPML = str(Path(sys.executable).parent / "loopml")
ADMIN_URL = (
    os.environ.get("LOOPML_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
)
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database on the test Postgres server, dropped (forced) afterwards."""
    yield from fresh_pg_database(ADMIN_URL, "loopml_r_", "to share between replicas")


def project(root: Path, store_url: str, artifacts: Path, config: str) -> Path:
    """The e2e loop project, its store on Postgres and its artifacts in a shared folder."""
    text = f"store: {store_url}\nartifacts: {artifacts}\n" + config
    return L.write_project(root, text, rows=300)


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def start_replica(root: Path, n: int) -> Replica:
    """``loopml serve --no-auth`` on a free loopback port, with the project as working dir."""
    port = free_port()
    log = root.parent / f"replica{n}.log"
    proc = subprocess.Popen(
        [LOOPML, "serve", "-c", str(root), "--host", "127.0.0.1", "--port", str(port), "--no-auth"],
        cwd=root,
        env=_env(),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return Replica(proc, f"http://127.0.0.1:{port}", log)


def wait_ready(replicas: list[Replica], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    # one client: httpx.get builds one per call, ~30 ms of CPU the starting servers need
    with httpx.Client(timeout=2) as client:
        for r in replicas:
            while True:
                if r.proc.poll() is not None:
                    raise AssertionError(
                        f"replica {r.url} exited with {r.proc.returncode}:\n"
                        + r.log.read_text(errors="replace")[-3000:]
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{r.url}/healthz").json().get("ready"):
                        break
                if time.monotonic() > deadline:
                    raise AssertionError(f"replica {r.url} not ready within {timeout:.0f} s")
                time.sleep(0.2)


NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream loopml {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://loopml;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host 127.0.0.1;
            proxy_connect_timeout 1s;
            # a replica that dies mid-request: the request goes to the next one
            proxy_next_upstream error timeout non_idempotent;
            proxy_next_upstream_tries 3;
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx(replicas: list[Replica], workdir: Path) -> Iterator[str]:
    """nginx in the foreground (a child process) balancing over ``replicas``; yields its URL."""
    if NGINX is None:
        pytest.skip("nginx is not installed (Debian: apt-get install -y nginx)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    servers = "\n".join(
        f"        server {r.url.removeprefix('http://')} max_fails=1 fail_timeout=2s;"
        for r in replicas
    )
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, servers=servers, port=port))
    proc = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(workdir), "-e", str(workdir / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline, last = time.monotonic() + 20, ""
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"nginx exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                r = httpx.get(f"{url}/healthz", timeout=2)
                if r.status_code == 200:
                    break
                last = f"{r.status_code} {r.text[:300]}"
            except httpx.HTTPError as e:
                last = repr(e)
            if time.monotonic() > deadline:
                errors = (workdir / "error.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"nginx did not answer within 20 s: {last}\n{errors}")
            time.sleep(0.1)
        yield url
    finally:
        stop(proc, signal.SIGQUIT, timeout=10)


@contextlib.contextmanager
def cluster(root: Path, n: int = 3) -> Iterator[tuple[str, list[Replica]]]:
    """``n`` replicas of ``root`` behind nginx; yields nginx's URL and the replicas."""
    replicas: list[Replica] = []
    try:
        replicas = [start_replica(root, i) for i in range(n)]
        wait_ready(replicas)
        with nginx(replicas, root.parent / "nginx") as url:
            yield url, replicas
    finally:
        for r in replicas:
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGTERM)
        for r in replicas:
            wait_or_kill(r.proc, 30)


def cli(root: Path, *args: str) -> str:
    """One ``loopml`` command on the project; fails with its output when it fails."""
    out = subprocess.run(
        [LOOPML, *args, "-c", str(root)], cwd=root, env=_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, f"loopml {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def deploy(root: Path, version: int) -> None:
    """``version`` deployed as the endpoint's champion, in this process: setup that does not
    need the ~1 s (much more on a busy box) a fresh ``loopml deploy`` interpreter takes."""
    from loopml.config import load_config
    from loopml.store import Store

    store = Store(load_config(root).store_url)
    try:
        store.endpoints.deploy(L.ENDPOINT, store.versions.get(version), actor="test")
    finally:
        store.close()


def predict_version(url: str, client: httpx.Client, row: dict[str, Any]) -> int | None:
    """The version one replica answers with now (None when it does not answer 200)."""
    try:
        r = client.post(f"{url}/v1/endpoints/{L.ENDPOINT}/predict", json={"rows": [row]})
    except httpx.HTTPError:
        return None
    return r.json().get("model_version") if r.status_code == 200 else None
