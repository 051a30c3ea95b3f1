"""Soak: ``loopml serve`` for a long time at half its measured maximum, with a canary, a
shadow, labels and the monitor running; throughput, client and server latency, RSS and open
file descriptors over time.

Not part of ``make test``. Goals (issue 14): RSS grows by at most 5% after the first five
minutes, p99 stays within 2x of the first five minutes', file descriptors stay flat.

    apt-get install -y wrk
    .venv/bin/python bench/soak/run.py                          # 30 minutes
    .venv/bin/python bench/soak/run.py --minutes 3 --block 60   # a smoke run

One process serves (API, dashboard, controller and monitor, as in production), pinned to
core 0; the load is wrk on core 1. First wrk measures the maximum (closed loop, 16
connections, 20 s), then ``paced.lua`` sends half of it at a fixed rate: 32 connections, one
per wrk thread, each on its own schedule of slots, latency counted from the slot a request
was due in (wrk2's timing), so a stalled server is charged for the requests it kept from
being sent; every tenth answered prediction is followed by a label for its request id. wrk
runs ``--every`` seconds at a time (reconnecting each time); between runs the server's RSS,
fds, CPU and ``loopml_predict_seconds`` histogram are read. ``p50``/``p99`` are the client's
view (queueing in the kernel and uvicorn included); ``s.p50``/``s.p99`` the histogram bucket
bounds by the server's own clock (parse, predict, durable log): the gap between the two is
time outside the app. ``lag99`` is how late the 99th-percentile request left its slot (the
generator falling behind, or all 32 connections waiting on the server); ``genCPU`` is wrk's
own CPU, so a starved generator shows.

Why not the Python client this file had: asyncio + httpx at ~500 req/s needs most of a core
for itself, so on two shared cores its own queue, not the server, set the p99 (5-18 s while
the server's p99 stayed <= 250 ms); the README has the side-by-side figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Self

sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench/, after this folder

import httpx
import numpy as np
import pandas as pd
import yaml
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
# a window closes a minute after its end (the default 5 min allows for the default
# compaction): segments are compacted every 30 s here, and the monitor's passes over closed
# windows start in the first block, which the goals take as their reference
monitor: {window: 1m, grace: 1m}
serve: {compact_every: 30s, log_segment: 30s}
"""
N = 8
HERE = Path(__file__).resolve().parent


def config_text(sets: list[str]) -> str:
    """``CONFIG`` with ``key.path=value`` settings applied (values parsed as YAML)."""
    doc = yaml.safe_load(CONFIG)
    for item in sets:
        path, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"--set takes key.path=value, got {item!r}")
        *parents, leaf = path.split(".")
        node = doc
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = yaml.safe_load(value)
    return yaml.safe_dump(doc, sort_keys=False)


def project(root: Path, sets: list[str]) -> tuple[Path, dict[str, int]]:
    """A small project with three versions: champion, canary and shadow."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, N))
    y = (X[:, 0] - X[:, 1] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(N)])
    frame["label"] = y
    (root / "data").mkdir(parents=True)
    frame.to_parquet(root / "data" / "train.parquet")
    (root / "train.py").write_text(TRAIN_PY)
    (root / "loopml.yaml").write_text(config_text(sets))
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


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the background worker, the log compactor, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def tree_rss(pid: int) -> float:
    """RSS of the server and every process below it, in MB (what the machine pays)."""
    total = rss_mb(pid)
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            total += rss_mb(child)
    return total


class Every:
    """A thread that calls :meth:`tick` every ``every`` seconds while the ``with`` block runs."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def tick(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.every)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class PinChildren(Every):
    """Keeps every process below the server on ``core`` (the
    background process and the compactor are started later, and again at each handover).

    Why: ``taskset`` gives the server's children its core, where at half the maximum they
    compete with the event loop (the box has two cores, one for the server, one for wrk),
    and at nice 10 they get what the loop leaves: in the quiet run of 2026-12-06 the server's
    process tree used 99% of its core, the compactor fell minutes behind and the background
    process's passes were starved. A server on a machine of its own has cores for them.
    Checked every 0.1 s: a child is spawned on the server's core and imports for about a
    second, which at 1 s checks could all land there."""

    def __init__(self, pid: int, core: str) -> None:
        super().__init__(0.1)
        self.pid, self.cores = pid, {int(c) for c in core.split(",")}

    def tick(self) -> None:
        for child in descendants(self.pid):
            with contextlib.suppress(OSError):
                if os.sched_getaffinity(child) != self.cores:
                    os.sched_setaffinity(child, self.cores)


class PeakRSS(Every):
    """The highest :func:`tree_rss` seen while the block runs, read every ``every`` s: the
    children's memory rises and falls with their work (a compaction, a monitoring pass), so
    one reading between wrk runs lands anywhere on that wave; the peak is what a machine must
    hold, and what would grow if something leaked."""

    def __init__(self, pid: int, every: float = 1.0) -> None:
        super().__init__(every)
        self.pid, self.peak = pid, 0.0

    def tick(self) -> None:
        with contextlib.suppress(OSError):
            self.peak = max(self.peak, tree_rss(self.pid))


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


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


def server_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The bucket bound (ms) under which a fraction ``q`` of the interval's answers fell, by
    the server's own clock (parse, predict, durable log; not the time spent queued before the
    app)."""
    diff = {b: after.get(b, 0.0) - before.get(b, 0.0) for b in after}
    total = diff.get(float("inf"), 0.0)
    if not total:
        return float("nan")
    for bound in sorted(diff):
        if diff[bound] >= q * total:
            return bound * 1000
    return float("inf")


def waiting_seconds(pid: int) -> float:
    """Time the server's main thread (the event loop) spent runnable but waiting for a CPU
    (``/proc/PID/schedstat``, second field): the box starving it, not the server being slow."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def cpu_seconds(pid: int, children: bool = True) -> float:
    """CPU seconds of the server and (``children``) every process below it now, those that
    ended and were reaped included (the server's cutime and cstime)."""
    total = 0.0
    for p in (pid, *(descendants(pid) if children else ())):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])
            if children and p == pid:
                ticks += int(fields[13]) + int(fields[14])
            total += ticks / os.sysconf("SC_CLK_TCK")
    return total


def cpu_pressure() -> float:
    """The share of the last 10 s in which some runnable task waited for a CPU (Linux PSI),
    in %: how contended the box was, whoever caused it."""
    text = Path("/proc/pressure/cpu")
    if not text.exists():
        return float("nan")
    return float(text.read_text().split()[1].split("=")[1])


def cpu_times() -> tuple[float, float]:
    """(steal, total) jiffies of all CPUs since boot, from ``/proc/stat``: ``steal`` is time
    the hypervisor ran someone else while this VM had work, which no process here sees."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[7] if len(fields) > 7 else 0.0), sum(fields[:8])


def client_priority(args: argparse.Namespace) -> list[str]:
    """``nice -n N`` for wrk when ``--client-nice`` is set and allowed (root for N < 0)."""
    if args.client_nice is None or (args.client_nice < 0 and os.geteuid() != 0):
        return []
    return ["nice", "-n", str(args.client_nice)]


def pinned(core: str | None, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", core, *cmd] if core else cmd


def max_rate(url: str, key: str, seconds: int, core: str | None) -> float:
    """Closed loop, wrk with 16 connections: the answered requests per second. Each request
    is a fresh row from the training distribution, as in the paced load: a constant row here
    would put tens of thousands of identical rows in the log's first windows, the monitor
    would rightly call that drift, and the controller would retrain in the middle of the
    soak (it did in an earlier run of this script)."""
    script = CLOSED.replace("{key}", key).replace("{features}", str(N))
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as f:
        f.write(script)
        f.flush()
        cmd = pinned(core, ["wrk", "-t1", "-c16", "--timeout", "30s", "-s", f.name])
        subprocess.run([*cmd, "-d3s", f"{url}/v1/endpoints/soak/predict"], capture_output=True)
        out = subprocess.run(
            [*cmd, f"-d{seconds}s", f"{url}/v1/endpoints/soak/predict"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps * (1 - (int(bad.group(1)) if bad else 0) / max(total, 1))


CLOSED = """
local function gauss()
  return math.sqrt(-2 * math.log(1 - math.random())) * math.cos(2 * math.pi * math.random())
end
function request()
  local f = {}
  for j = 0, {features} - 1 do
    f[#f + 1] = string.format('"f%d": %.4f', j, gauss())
  end
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json", ["Authorization"] = "Bearer {key}",
  }, '{"rows": [{' .. table.concat(f, ", ") .. '}]}')
end
"""


def paced(
    url: str, keys: tuple[str, str], rate: float, args: argparse.Namespace, work: Path
) -> dict:
    """One chunk of fixed-rate load (paced.lua); the lines it wrote, wrk's socket errors and
    the generator's own CPU seconds."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    script = (HERE / "paced.lua").read_text()
    for name, value in {
        "rate": repr(rate),
        "threads": str(args.connections),
        "label_every": "10",
        "key": keys[0],
        "admin": keys[1],
        "out": str(work),
        "features": str(N),
    }.items():
        script = script.replace("{" + name + "}", value)
    (work / "paced.lua").write_text(script)
    c = str(args.connections)
    cmd = ["wrk", f"-t{c}", f"-c{c}", "--timeout", "30s", f"-d{max(int(args.every), 1)}s"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [
            *client_priority(args),
            *pinned(args.client_core, cmd),
            "-s",
            str(work / "paced.lua"),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    lines = [ln.split() for p in work.glob("lat-*.txt") for ln in p.read_text().splitlines()]
    kinds = np.array([ln[0] for ln in lines])
    nums = np.array([[int(x) for x in ln[1:]] for ln in lines], dtype=np.int64).reshape(-1, 3)
    pred = kinds == "p"
    ok = pred & (nums[:, 0] == 200)
    return {
        "sent": int(pred.sum()),
        "latency_ms": nums[ok, 1] / 1000,
        "lag_ms": nums[pred, 2] / 1000,
        "errors": int((pred & ~ok).sum()) + (sum(map(int, sock.groups())) if sock else 0),
        "statuses": {str(k): n for k, n in Counter(nums[pred & ~ok, 0].tolist()).items()},
        "socket_errors": sum(map(int, sock.groups())) if sock else 0,
        "labels": int((kinds == "l").sum()),
        "label_errors": int(((kinds == "l") & (nums[:, 0] != 200)).sum()),
        "client_cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    }


def max_paced_rate(
    url: str, keys: tuple[str, str], args: argparse.Namespace, work: Path, start: float
) -> float:
    """The highest fixed rate the server keeps up with, under the soak's own load (paced.lua,
    ``args.connections`` connections, ``PROBE_SECONDS`` a step): answering at least 97% of
    it with a client p95 of at most ``SLO_MS`` (a step's p99 rests on its few slowest
    answers, the first ones of fresh connections among them). Doubles from ``start`` until a step fails,
    then bisects four times.

    Why not the closed-loop maximum alone: with batching, a closed loop's throughput grows
    with its concurrency (every answer sends the next request into the batch being
    collected), while the soak's requests arrive on their own schedule and batch far less.
    At half the closed-loop maximum of 16 connections (2,742 req/s) the 2026-12-06 soak's
    server used 96% of its core: that was a run at the edge of its capacity, not at half."""
    probe = argparse.Namespace(**{**vars(args), "every": PROBE_SECONDS})

    def keeps_up(rate: float) -> bool:
        got = paced(url, keys, rate, probe, work / "probe")
        lat = got["latency_ms"]
        p95 = float(np.percentile(lat, 95)) if len(lat) else float("inf")
        ok = len(lat) >= 0.97 * rate * PROBE_SECONDS and p95 <= SLO_MS
        print(
            f"  paced {rate:6.0f} req/s: {len(lat) / PROBE_SECONDS:6.0f} answered a second, "
            f"p95 {p95:7.1f} ms: "
            f"{'keeps up' if ok else 'falls behind'}",
            flush=True,
        )
        return ok

    lo, hi, rate = 0.0, float("inf"), start
    while hi == float("inf"):
        if keeps_up(rate):
            lo, rate = rate, rate * 2
        else:
            hi = rate
    for _ in range(4):
        mid = (lo + hi) / 2
        if keeps_up(mid):
            lo = mid
        else:
            hi = mid
    return lo


PROBE_SECONDS = 15
SLO_MS = 100.0


def soak(url: str, pid: int, keys: tuple[str, str], args: argparse.Namespace, work: Path) -> int:
    closed = float("nan")
    if args.rate:
        rate, top = args.rate, float("nan")
    else:
        closed = max_rate(url, keys[0], 20, args.client_core)
        print(f"closed-loop maximum {closed:.0f} req/s (wrk, 16 connections, 20 s)", flush=True)
        if args.max == "closed":
            top = closed
        else:
            top = max_paced_rate(url, keys, args, work, start=closed / 4)
        rate = max(top / 2, 1.0)
    args.closed_max = closed
    print(
        f"maximum {top:.0f} req/s ({args.max}: "
        + (
            "wrk closed loop, 16 connections"
            if args.max == "closed"
            else f"the highest paced rate answered with p95 <= {SLO_MS:g} ms"
        )
        + f"); soaking at {rate:.0f} req/s with {args.connections} paced connections; server "
        f"on core {args.server_core or 'any'}, wrk on core {args.client_core or 'any'}, the "
        f"server's background processes on core {args.children_core or args.server_core}",
        flush=True,
    )
    print(HEADER, flush=True)
    chunks = []
    start = time.monotonic()
    for _ in range(max(round(args.minutes * 60 / args.every), 1)):
        before = server_buckets(url, keys[1])
        cpu0, main0 = cpu_seconds(pid), cpu_seconds(pid, children=False)
        wait0, t0, stolen0 = waiting_seconds(pid), time.monotonic(), cpu_times()
        with PeakRSS(pid) as peak:
            got = paced(url, keys, rate, args, work / "chunk")
        wall = time.monotonic() - t0
        stolen1 = cpu_times()
        after = server_buckets(url, keys[1])
        got.update(
            minute=(time.monotonic() - start) / 60,
            seconds=wall,
            buckets={b: after[b] - before.get(b, 0.0) for b in after},
            rss=rss_mb(pid),
            tree_rss=tree_rss(pid),
            tree_peak=peak.peak,
            fds=fds(pid),
            load1=os.getloadavg()[0],
            psi=cpu_pressure(),
            steal=(stolen1[0] - stolen0[0]) / max(stolen1[1] - stolen0[1], 1.0) * 100,
            server_cpu=(cpu_seconds(pid, children=False) - main0) / wall * 100,
            children_cpu=(cpu_seconds(pid) - cpu0) / wall * 100
            - (cpu_seconds(pid, children=False) - main0) / wall * 100,
            server_wait=(waiting_seconds(pid) - wait0) / wall * 100,
            client_cpu=got["client_cpu"] / wall * 100,
        )
        chunks.append(got)
        print(row(summarise([got])), flush=True)
    per = max(round(args.block / args.every), 1)
    blocks = [summarise(chunks[i : i + per]) for i in range(0, len(chunks), per)]
    return report(blocks, rate, top, args)


HEADER = (
    f"{'minute':>7} {'req/s':>6} {'p50':>6} {'p99':>7} {'s.p50':>6} {'s.p99':>6} {'lag99':>6} "
    f"{'RSS MB':>7} {'treeMB':>7} {'fds':>4} {'err':>4} {'load1':>5} {'psi%':>4} {'steal':>5} {'srvCPU':>6} {'bgCPU':>6} "
    f"{'srvWait':>6} {'genCPU':>6}"
)


def summarise(chunks: list[dict]) -> dict:
    """Chunks merged: client percentiles over all their answers, the server's over the sum of
    their histogram deltas, RSS and fds as at the last chunk's end, the peak RSS of all the
    server's processes over the chunks."""
    lat = np.concatenate([c["latency_ms"] for c in chunks])
    lag = np.concatenate([c["lag_ms"] for c in chunks])
    buckets: dict[float, float] = {}
    for c in chunks:
        for b, n in c["buckets"].items():
            buckets[b] = buckets.get(b, 0.0) + n
    seconds = sum(c["seconds"] for c in chunks)
    return {
        "minute": chunks[-1]["minute"],
        "rate": len(lat) / seconds,
        "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "server_p50": server_quantile({}, buckets, 0.50),
        "server_p99": server_quantile({}, buckets, 0.99),
        "lag_p99": float(np.percentile(lag, 99)) if len(lag) else float("nan"),
        "rss": chunks[-1]["rss"],
        "tree_rss": chunks[-1]["tree_rss"],
        "tree_peak": max(c["tree_peak"] for c in chunks),
        "fds": chunks[-1]["fds"],
        "fds_max": max(c["fds"] for c in chunks),
        "errors": sum(c["errors"] for c in chunks),
        "labels": sum(c["labels"] for c in chunks),
        "label_errors": sum(c["label_errors"] for c in chunks),
        "load1": float(np.mean([c["load1"] for c in chunks])),
        "load1_max": max(c["load1"] for c in chunks),
        "psi": float(np.mean([c["psi"] for c in chunks])),
        "steal": float(np.mean([c["steal"] for c in chunks])),
        "steal_max": max(c["steal"] for c in chunks),
        "server_cpu": float(np.mean([c["server_cpu"] for c in chunks])),
        "children_cpu": float(np.mean([c["children_cpu"] for c in chunks])),
        "server_wait": float(np.mean([c["server_wait"] for c in chunks])),
        "statuses": dict(sum((Counter(c["statuses"]) for c in chunks), Counter())),
        "socket_errors": sum(c["socket_errors"] for c in chunks),
        "client_cpu": float(np.mean([c["client_cpu"] for c in chunks])),
    }


def row(s: dict) -> str:
    return (
        f"{s['minute']:7.1f} {s['rate']:6.0f} {s['p50']:6.1f} {s['p99']:7.1f} "
        f"{s['server_p50']:6.1f} {s['server_p99']:6.1f} {s['lag_p99']:6.1f} {s['rss']:7.1f} "
        f"{s['tree_peak']:7.1f} "
        f"{s['fds']:4d} {s['errors']:4d} {s['load1']:5.2f} {s['psi']:4.0f} {s['steal']:4.1f}% {s['server_cpu']:5.0f}% "
        f"{s['children_cpu']:5.0f}% {s['server_wait']:5.0f}% "
        f"{s['client_cpu']:5.0f}%"
    )


def kinds(b: dict) -> str:
    """What the errors were: HTTP statuses and wrk's socket errors."""
    parts = [f"{n} x {k}" for k, n in sorted(b["statuses"].items())]
    parts += [f"{b['socket_errors']} x socket"] if b["socket_errors"] else []
    return f" ({', '.join(parts)})" if parts else ""


def report(blocks: list[dict], rate: float, top: float, args: argparse.Namespace) -> int:
    """The table per block (Markdown, for the README) and the three goals."""
    print(f"\nper {args.block / 60:g} minutes (latencies in ms; s. = the server's own clock):\n")
    print(
        "| until minute | req/s | p50 client | p99 client | p50 server | p99 server | "
        "requests late leaving, p99 | RSS MB | all processes, peak MB | fds | errors | labels | load avg (1 min) | CPU pressure | CPU stolen by the host (max) | server CPU | "
        "its background processes' CPU | server waiting for a CPU | wrk CPU |"
    )
    print("|" + "---|" * 19)
    for b in blocks:
        print(
            f"| {b['minute']:.1f} | {b['rate']:.0f} | {b['p50']:.1f} | {b['p99']:.1f} | "
            f"≤ {b['server_p50']:g} | ≤ {b['server_p99']:g} | {b['lag_p99']:.1f} | {b['rss']:.1f} | "
            f"{b['tree_peak']:.1f} | "
            f"{b['fds']} | "
            f"{b['errors']}{kinds(b)} | {b['labels']} | {b['load1']:.1f} (max {b['load1_max']:.1f}) | "
            f"{b['psi']:.0f}% | {b['steal']:.1f}% ({b['steal_max']:.1f}%) | "
            f"{b['server_cpu']:.0f}% | {b['children_cpu']:.0f}% | {b['server_wait']:.0f}% | "
            f"{b['client_cpu']:.0f}% |"
        )
    first, rest = blocks[0], blocks[1:] or blocks
    rss_growth = (max(b["tree_peak"] for b in rest) - first["tree_peak"]) / first["tree_peak"] * 100
    main_growth = (blocks[-1]["rss"] - first["rss"]) / first["rss"] * 100
    p99_ratio = max(b["p99"] for b in rest) / max(first["p99"], 1e-9)
    fd_growth = max(b["fds_max"] for b in rest) - first["fds_max"]
    goals = {
        f"peak RSS of all the server's processes {rss_growth:+.1f}% over the first block's peak "
        f"(the serving process alone {main_growth:+.1f}% end to end; goal <= +5%)": rss_growth <= 5,
        f"worst client p99 {p99_ratio:.2f}x the first block's (goal <= 2x)": p99_ratio <= 2,
        f"open fds {fd_growth:+d} over the first block's highest (goal: flat, <= +4)": (
            fd_growth <= 4
        ),
    }
    print(f"\nsoaked at {rate:.0f} req/s (half of {top:.0f})")
    for text, ok in goals.items():
        print(f"  {'met   ' if ok else 'MISSED'} {text}")
    if args.json:
        commit = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        Path(args.json).write_text(
            json.dumps(
                {
                    "commit": commit,
                    "rate": rate,
                    "max": top,
                    "max_from": args.max,
                    "closed_loop_max": args.closed_max,
                    "blocks": blocks,
                },
                indent=1,
            )
        )
    return 0 if all(goals.values()) else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--every", type=float, default=60.0, help="seconds per wrk run and sample")
    p.add_argument("--block", type=float, default=300.0, help="seconds per row of the table")
    p.add_argument("--rate", type=float, help="requests/s (default: half the measured maximum)")
    p.add_argument(
        "--max",
        choices=("paced", "closed"),
        default="paced",
        help="the maximum the rate is half of: 'paced', the highest rate of the soak's own "
        "paced load answered with p95 <= 100 ms (default); 'closed', wrk's closed loop with "
        "16 connections (before 2026-12-06; see max_paced_rate)",
    )
    p.add_argument("--connections", type=int, default=32, help="paced connections (wrk threads)")
    p.add_argument("--server-core", default="0", help="taskset core for the server ('' for none)")
    p.add_argument("--client-core", default="1", help="taskset core for wrk ('' for none)")
    p.add_argument(
        "--children-core",
        default="1",
        help="core(s) for the server's background processes ('' to leave them on the "
        "server's core; see PinChildren)",
    )
    p.add_argument(
        "--client-nice",
        type=int,
        default=-10,
        help="wrk's nice value (default -10, applied when running as root): the server's "
        "background processes share wrk's core, and a load generator that waits for a CPU "
        "sends late, which counts as latency",
    )
    p.add_argument("--json", help="write the blocks to this file")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a loopml.yaml setting for the soaked project, e.g. monitor.schedule=600",
    )
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    if args.client_core:  # this script's own polling (PinChildren, PeakRSS) off the server's core
        os.sched_setaffinity(0, {int(c) for c in args.client_core.split(",")})
    # a background job ignores SIGINT: stop it with SIGTERM, which still stops the server
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="loopml-soak-"))
    proc = None
    try:
        root, _ = project(tmp / "proj", args.set)
        # one key stands for every client here: its rate limit must not be what is measured
        key = cli(root, "keys", "create", "--role", "predictor", "--rate-limit", "1000000")
        key = key.strip().splitlines()[-1]
        admin = cli(root, "keys", "create", "--role", "admin").strip().splitlines()[-1]
        port = free_port()
        cmd = [sys.executable, "-m", "loopml.cli", "-c", str(root), "serve", "--port", str(port)]
        proc = subprocess.Popen(
            pinned(args.server_core, cmd),
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
        if not args.children_core:
            return soak(url, proc.pid, (key, admin), args, tmp / "load")
        with PinChildren(proc.pid, args.children_core):
            return soak(url, proc.pid, (key, admin), args, tmp / "load")
    finally:
        if proc is not None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
