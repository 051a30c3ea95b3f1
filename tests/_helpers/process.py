"""Ending the real processes a test started (servers, nginx) without leaving any behind, and
running a script in a fresh interpreter (what a test of a process's own memory needs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run_python(script: str, timeout: float = 120) -> Any:
    """Run ``script`` in a fresh Python with this checkout's ``src`` importable; returns what
    it printed, as JSON. Fails the test with its stderr if it fails."""
    path = os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def wait_or_kill(proc: subprocess.Popen, timeout: float) -> None:
    """Wait ``timeout`` seconds for ``proc`` to exit, then kill it."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
    """Send ``sig`` (a graceful stop) and wait for ``proc`` to exit; kill it after ``timeout``."""
    proc.send_signal(sig)
    wait_or_kill(proc, timeout)


def children(pid: int, command: bytes = b"") -> list[int]:
    """The pids of ``pid``'s children whose command line holds ``command``, read from /proc."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and _ppid(d) == pid:
            try:
                if command in (d / "cmdline").read_bytes():
                    out.append(int(d.name))
            except OSError:  # ended meanwhile
                continue
    return out


def ended(pid: int) -> bool:
    """True once ``pid`` is gone or a zombie (it ran its last instruction)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _ppid(proc_dir: Path) -> int | None:
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
