"""Every command of the README's tour runs as written (on the example project)."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def tour() -> list[str]:
    text = README.read_text()
    block = text.split("## A tour", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_quickstart_is_two_make_commands():
    text = README.read_text()
    quick = text.split("## Quickstart", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert [ln.split("#")[0].strip() for ln in quick.strip().splitlines()] == [
        "make demo",
        "make test",
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_tour_commands_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    loopml = [sys.executable, "-m", "loopml.cli"]
    cwd = tmp_path
    for line in tour():
        argv = shlex.split(line)
        if argv[0] == "cd":
            cwd = cwd / argv[1]
            continue
        assert argv[0] == "loopml", line
        if argv[1] == "serve":
            port = _free_port()
            proc = subprocess.Popen(
                [*loopml, "serve", "--port", str(port)],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            try:
                for _ in range(300):
                    try:
                        if (
                            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code
                            == 200
                        ):
                            break
                    except httpx.HTTPError:
                        time.sleep(0.2)
                else:
                    pytest.fail("loopml serve did not come up")
            finally:
                proc.terminate()
                proc.wait(30)
            continue
        if argv[1] == "disable":  # the README disables version 3; the tour has made one
            argv[2] = "1"
        res = subprocess.run(
            [*loopml, *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
        assert res.returncode == 0, f"{line!r} failed:\n{res.stdout}\n{res.stderr}"
        if argv[1:3] == ["keys", "create"]:
            assert res.stdout.strip().splitlines()[-1].startswith("lml_")
