"""Issue 14 defect 4: a full or unwritable log directory answers 503 naming the cause, turns
the server not-ready, and heals by itself (it answered 500 "a bug" while staying ready)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import serve_helpers as h

pytestmark = pytest.mark.anyio


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "512k"):
    """A small real tmpfs at ``path`` (skips where mounting is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()[:200]}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(volume: Path) -> Path:
    """Write until the volume is full; returns the filler file."""
    filler = volume / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    return filler


async def _until(c, path: str, status: int, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        r = await c.get(path)
        if r.status_code == status or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.1)


async def test_full_log_volume_is_503_not_ready_then_recovers(settings, keys, tmp_path):
    predict = "/v1/endpoints/credit/predict"
    auth = h.bearer(keys["predictor"])
    acknowledged: list[str] = []
    with tmpfs(tmp_path / "logvol") as volume:
        on_tmpfs = dataclasses.replace(settings, log_root=str(volume))
        async with h.serving(on_tmpfs) as (_, c):
            for i in range(20):
                r = await c.post(predict, json={"rows": [h.row(i)]}, headers=auth)
                assert r.status_code == 200, r.text
                acknowledged += r.json()["request_ids"]
            filler = fill(volume)
            r = await c.post(predict, json={"rows": [h.row(i) for i in range(200)]}, headers=auth)
            assert r.status_code == 503, r.text
            doc = r.json()
            assert doc["field"] == "log" and "ENOSPC" in doc["error"], doc
            assert str(volume) not in doc["error"]  # no paths in answers
            assert r.headers.get("retry-after")
            r = await c.get("/v2/health/ready")
            assert r.status_code == 503 and "cannot be written" in r.json()["error"]
            assert (await c.get("/healthz")).json()["ready"] is False
            # refused fast while broken: nothing queues behind the full disk
            r = await c.post(predict, json={"rows": [h.row(1)]}, headers=auth)
            assert r.status_code == 503 and r.json()["field"] == "log"

            filler.unlink()  # space returns
            r = await _until(c, "/v2/health/ready", 200)
            assert r.status_code == 200, r.text
            r = await c.post(predict, json={"rows": [h.row(2)]}, headers=auth)
            assert r.status_code == 200, r.text
            acknowledged += r.json()["request_ids"]
            rid = r.json()["request_ids"][0]
            r = await c.post(
                "/v1/labels",
                json={"labels": [{"request_id": rid, "label": 1}]},
                headers=h.bearer(keys["labeller"]),
            )
            assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        # nothing acknowledged was lost: every 200's request id is in the log on disk
        from loopml.logs.logreader import read_log

        logged = set(read_log(volume, "credit").column("_request_id").to_pylist())
        assert set(acknowledged) <= logged, set(acknowledged) - logged


async def test_log_directory_gone_is_503_then_recovers(settings, keys, tmp_path):
    """The directory itself unusable (here: replaced by a file, so nothing can be created in
    it; as root, permission bits would not stop a write)."""
    auth = h.bearer(keys["predictor"])
    on_tmp = dataclasses.replace(settings, log_root=str(tmp_path / "logs"), segment_seconds=0.2)
    async with h.serving(on_tmp) as (_, c):
        wal_dir = Path(on_tmp.log_root) / "predlog" / "_wal"
        r = await c.post("/v1/endpoints/credit/predict", json={"rows": [h.row(0)]}, headers=auth)
        assert r.status_code == 200
        aside = wal_dir.with_name("_wal.aside")
        os.rename(wal_dir, aside)
        wal_dir.write_text("not a directory")
        # An open segment still takes writes (its file is open); once it rolls by age (0.2 s)
        # no new one can start. A segment that rolled empty before the move only rolls again
        # on a write, so keep writing until a write meets the gone directory.
        deadline = time.monotonic() + 45.0
        while True:
            r = await c.post(
                "/v1/endpoints/credit/predict", json={"rows": [h.row(1)]}, headers=auth
            )
            if r.status_code != 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert r.status_code == 503 and "ENOTDIR" in r.json()["error"], r.text
        r = await c.get("/v2/health/ready")
        assert r.status_code == 503 and r.json()["field"] == "log", r.text
        wal_dir.unlink()
        os.rename(aside, wal_dir)
        r = await _until(c, "/v2/health/ready", 200, timeout=45.0)
        assert r.status_code == 200, r.text
        r = await c.post("/v1/endpoints/credit/predict", json={"rows": [h.row(2)]}, headers=auth)
        assert r.status_code == 200, r.text
    shutil.rmtree(tmp_path / "logs", ignore_errors=True)
