"""Two drills the demo runs against the real server, each checked rather than told:

* a client's broken requests are refused with a 4xx that names the field and the row, and
  the model never sees them;
* ``loopml serve`` killed with SIGKILL under load loses no answered prediction: every request
  id that got a 200 is read back from the prediction log after the crash.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from loopml.logs.layout import LogLocation

PREDICT = "/v1/endpoints/employment/predict"


def broken_requests(http: httpx.Client, row: dict[str, Any]) -> list[str]:
    """Send two broken requests (text in a numeric column; a missing column); one line each."""
    some = next(k for k, v in row.items() if isinstance(v, int | float))
    cases = [
        (f"{some}='forty'", {"rows": [row, {**row, some: "forty"}]}),
        (f"no {some} column", {"rows": [{k: v for k, v in row.items() if k != some}]}),
    ]
    lines = []
    for what, body in cases:
        r = http.post(PREDICT, json=body)
        error = r.json().get("error", r.text) if r.status_code >= 400 else "(accepted!)"
        lines.append(f"a client sends {what}: HTTP {r.status_code}: {error}")
    return lines


def _start(project: Path, port: int) -> subprocess.Popen[bytes]:
    """``loopml serve`` on ``project`` as a child process, once every model is loaded."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopml.cli", "-c", str(project), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode()[-1500:] if proc.stderr else ""
            raise RuntimeError(f"loopml serve exited with {proc.returncode}: {err}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return proc
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("loopml serve did not become ready within 120 s")


def kill_under_load(
    project: Path, key: str, rows: list[dict[str, Any]], *, clients: int = 4, answered: int = 1500
) -> tuple[list[str], int]:
    """Start ``loopml serve``, load it from ``clients`` threads, SIGKILL it once ``answered``
    predictions got a 200 (or after 20 s). Returns the answered request ids and how many
    requests were cut off by the kill."""
    from loopml.server import free_port

    port = free_port()
    proc = _start(project, port)
    acked: list[str] = []
    cut = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ) as http:
            i = n
            while not stop.is_set():
                batch = [rows[(i + j) % len(rows)] for j in range(10)]
                try:
                    r = http.post(PREDICT, json={"rows": batch})
                except httpx.HTTPError:
                    with lock:
                        cut[0] += 1  # no answer, so no promise was made
                    return
                if r.status_code == 200:
                    with lock:
                        acked.extend(r.json()["request_ids"])
                i += 10 * clients

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    deadline = time.time() + 20
    while len(acked) < answered and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    for t in threads:
        t.join()
    with lock:
        return list(acked), cut[0]


def missing_from_log(where: LogLocation | str | Path, acked: list[str]) -> set[str]:
    """The answered request ids the prediction log does not hold (empty: nothing lost)."""
    from loopml.logs.logreader import read_log

    logged = set(read_log(where, "employment").column("_request_id").to_pylist())
    return set(acked) - logged
