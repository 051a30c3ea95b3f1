"""Soak: ``loopml serve`` for a long time at half its measured maximum, with a canary, a
shadow, labels and the monitor running; RSS, p99 latency and open file descriptors over time.

Not part of ``make test``. Goals (issue 14): RSS grows by at most 5% after the first five
minutes, p99 stays within 2x of the first five minutes', file descriptors stay flat.

    .venv/bin/python bench/soak/run.py                 # 30 minutes
    .venv/bin/python bench/soak/run.py --minutes 3     # a smoke run (then the five-minute
                                                       # baseline is the first fifth)

One process serves (API, dashboard, controller and monitor, as in production); the load
comes from this process (asyncio + httpx, open loop at a fixed rate), so on a small box the
client's own CPU caps the maximum: read the numbers as the server's behaviour over time, not
as its peak throughput (bench/serving measures that with wrk). ``p99 ms`` is what the client
saw (queueing included); ``server`` is the p99 bucket of the server's own
``loopml_predict_seconds`` histogram over the same interval, which tells a stalled server from
a stalled client or box.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench/, after this folder

import httpx
import numpy as np
import pandas as pd
from harness import free_port, rss_mb

TRAIN_PY = """
from sklearn.linear_model import LogisticRegression


def train(X, y, params, seed=0):
    return LogisticRegression(C=params.get("C", 1.0), max_iter=500).fit(X, y)
"""

CONFIG = """\
project: soak
data: {train: data/train.parquet, target: label}
model: {name: soak, train: train.py:train}
gates: {champion: {blocking: false}}
deploy: {endpoint: soak}
monitor: {window: 1m}
serve: {compact_every: 30s, log_segment: 30s}
"""
N = 8


def project(root: Path) -> tuple[Path, dict[str, int]]:
    """A small project with three versions: champion, canary and shadow."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, N))
    y = (X[:, 0] - X[:, 1] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(N)])
    frame["label"] = y
    (root / "data").mkdir(parents=True)
    frame.to_parquet(root / "data" / "train.parquet")
    (root / "train.py").write_text(TRAIN_PY)
    (root / "loopml.yaml").write_text(CONFIG)
    ids = {}
    for name in ("champion", "canary", "shadow"):
        out = cli(root, "run", "--json")
        ids[name] = int(json.loads(out)["version"])
    cli(root, "deploy", "soak", str(ids["champion"]))
    cli(root, "deploy", "soak", str(ids["canary"]), "--canary", "10")
    cli(root, "deploy", "soak", str(ids["shadow"]), "--shadow")
    return root, ids


def cli(root: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "loopml.cli", "-c", str(root), *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Load:
    """Open-loop load at ``rate`` requests/s; one label for every tenth prediction."""

    def __init__(self, url: str, key: str, admin: str) -> None:
        self.url, self.key, self.admin = url, key, admin
        self.latencies: list[float] = []
        self.errors = 0
        self.sent = 0

    async def one(self, client: httpx.AsyncClient, i: int) -> None:
        row = {f"f{j}": random.gauss(0, 1) for j in range(N)}
        t0 = time.perf_counter()
        try:
            r = await client.post(
                "/v1/endpoints/soak/predict",
                json={"rows": [row]},
                headers={"Authorization": f"Bearer {self.key}", "X-Entity-Key": str(i % 5000)},
            )
        except httpx.HTTPError:
            self.errors += 1
            return
        self.latencies.append(time.perf_counter() - t0)
        if r.status_code != 200:
            self.errors += 1
        elif i % 10 == 0:
            rid = r.json()["request_ids"][0]
            label = int(row["f0"] - row["f1"] > 0)
            with contextlib.suppress(httpx.HTTPError):
                await client.post(
                    "/v1/labels",
                    json={"labels": [{"request_id": rid, "label": label}]},
                    headers={"Authorization": f"Bearer {self.admin}"},
                )

    async def run(self, rate: float, seconds: float) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=30) as client:
            tasks: set[asyncio.Task[None]] = set()
            t0 = time.perf_counter()
            while (now := time.perf_counter() - t0) < seconds:
                due = int(now * rate) - self.sent
                for _ in range(max(due, 0)):
                    task = asyncio.create_task(self.one(client, self.sent))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    self.sent += 1
                await asyncio.sleep(0.002)
            if tasks:
                await asyncio.wait(tasks)


def server_buckets(url: str, key: str) -> dict[float, float]:
    """Cumulative counts of ``loopml_predict_seconds`` (answered roles) by upper bound."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}).text
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "loopml_predict_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("role") in (
                "champion",
                "canary",
            ):
                bound = float(sample.labels["le"])
                out[bound] = out.get(bound, 0.0) + sample.value
    return out


def server_p99(before: dict[float, float], after: dict[float, float]) -> float:
    """The bucket bound (ms) under which 99% of the interval's answers fell, by the server's
    own clock (parse, predict, durable log; not the time spent queued before the app)."""
    diff = {b: after.get(b, 0.0) - before.get(b, 0.0) for b in after}
    total = diff.get(float("inf"), 0.0)
    if not total:
        return float("nan")
    for bound in sorted(diff):
        if diff[bound] >= 0.99 * total:
            return bound * 1000
    return float("inf")


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99) * 1000) if values else float("nan")


async def max_rate(url: str, key: str, admin: str, seconds: float) -> float:
    """Closed loop, 32 clients: the answered requests per second."""
    load = Load(url, key, admin)

    async def worker(client: httpx.AsyncClient, stop: float) -> None:
        i = 0
        while time.perf_counter() < stop:
            await load.one(client, i)
            i += 1

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        stop = time.perf_counter() + seconds
        await asyncio.gather(*(worker(client, stop) for _ in range(32)))
    return len(load.latencies) / seconds


async def soak(url: str, pid: int, key: str, admin: str, minutes: float, every: float) -> int:
    top = await max_rate(url, key, admin, 15)
    rate = max(top / 2, 1.0)
    print(f"maximum ~{top:.0f} req/s (closed loop, 32 clients); soaking at {rate:.0f} req/s")
    print(
        f"{'minute':>7} {'req/s':>7} {'p99 ms':>8} {'server':>8} {'RSS MB':>8} {'fds':>5} "
        f"{'errors':>7}"
    )
    rows = []
    t_end = time.monotonic() + minutes * 60
    start = time.monotonic()
    while time.monotonic() < t_end:
        load = Load(url, key, admin)
        span = min(every, t_end - time.monotonic())
        before = await asyncio.to_thread(server_buckets, url, admin)
        await load.run(rate, span)
        after = await asyncio.to_thread(server_buckets, url, admin)
        row = {
            "minute": (time.monotonic() - start) / 60,
            "rate": len(load.latencies) / span,
            "p99": p99(load.latencies),
            "server_p99": server_p99(before, after),
            "rss": rss_mb(pid),
            "fds": fds(pid),
            "errors": load.errors,
        }
        rows.append(row)
        print(
            f"{row['minute']:7.1f} {row['rate']:7.0f} {row['p99']:8.1f} "
            f"{row['server_p99']:8.1f} {row['rss']:8.1f} "
            f"{row['fds']:5d} {row['errors']:7d}",
            flush=True,
        )
    base_minutes = min(5.0, minutes / 5)
    base = [r for r in rows if r["minute"] <= base_minutes] or rows[:1]
    rest = [r for r in rows if r["minute"] > base_minutes] or rows[-1:]
    rss_growth = (rest[-1]["rss"] - base[-1]["rss"]) / base[-1]["rss"] * 100
    p99_ratio = max(r["p99"] for r in rest) / max(np.median([r["p99"] for r in base]), 1e-9)
    fd_span = max(r["fds"] for r in rest) - min(r["fds"] for r in rows)
    ok = rss_growth <= 5 and p99_ratio <= 2 and fd_span <= 8
    print(
        f"\nRSS {rss_growth:+.1f}% after the first {base_minutes:g} min (goal <= +5%), "
        f"worst p99 {p99_ratio:.2f}x the first minutes' (goal <= 2x), fds moved by "
        f"{fd_span} (goal: flat), {sum(r['errors'] for r in rows)} errors: "
        f"{'GOALS MET' if ok else 'GOALS MISSED'}"
    )
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--every", type=float, default=30.0, help="seconds per sample")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="loopml-soak-"))
    proc = None
    try:
        root, _ = project(tmp / "proj")
        key = cli(root, "keys", "create", "--role", "predictor").strip().splitlines()[-1]
        admin = cli(root, "keys", "create", "--role", "admin").strip().splitlines()[-1]
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "loopml.cli", "-c", str(root), "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        return asyncio.run(soak(url, proc.pid, key, admin, args.minutes, args.every))
    finally:
        if proc is not None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
