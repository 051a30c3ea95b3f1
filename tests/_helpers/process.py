"""Ending the real processes a test started (servers, nginx) without leaving any behind."""

from __future__ import annotations

import signal
import subprocess


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
