"""The categorical case: a scikit-learn pipeline on four string and four numeric columns.

``run.py --case categorical`` (or this file alone) serves one pipeline, ``ColumnTransformer``
(one-hot of the four strings, a scaler on the four numbers) then
``HistGradientBoostingClassifier``, with seven servers, each pinned to core 0 with ``wrk -t1``
on core 1 at 16 and 64 connections, single-row JSON POSTs:

- loopml: auth on (a predictor key with its own rate limit), a 10% canary, one shadow on all
  traffic, the durable prediction log (fsync before each answer, group commit), access log on;
- loopml (champion only): the same server, key and log, on a second endpoint that serves the
  champion alone: the like-for-like comparison with the batching floor (1 model), so the
  platform's own cost is read apart from the cost of the canary and the shadow;
- MLflow ``dataframe_split`` (the pipeline logged from a DataFrame: a column signature);
- MLServer (mlserver-sklearn, in-process inference, pandas codec, one input per column);
- the per-request floor: bare Starlette, one ``predict_proba`` per request, no auth, no log;
- the batching floor (1 model): bare Starlette that gathers concurrent requests into one
  ``predict_proba`` (the honest ceiling for a model whose cost is flat in the row count);
- the batching floor (champion + 10% canary + shadow): the same gathering, scoring what
  loopml's configured case scores (the canary's rows by the champion too, the shadow on every
  row, gathered up to 256 rows or 200 ms), without auth, validation or a log: the ceiling
  for this configuration.

Besides req/s and latency it reports CPU per request: the server's process tree (utime +
stime from /proc, every process of its session) over the measured run, divided by the 2xx
answers; the model's share, from a calibration of ``predict_proba`` cost against batch size
(same core, before the servers start) and each server's count of model calls (loopml's
``loopml_batch_size`` histogram, the batching floors' ``/stats``, one call per request for
the others); and the platform's share, the difference.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parent))  # bench/, for harness

import harness  # noqa: E402
from categorical_apps import (  # noqa: E402
    BATCHING_FLOOR_APP,
    CALIBRATE,
    CASE_FLOOR,
    CASE_FLOOR_APP,
    FEATURES,
    FIT_SAVE,
    FLOOR_APP,
    LOOPML_YAML,
    NUMBERS,
    ONE_FLOOR,
    SOLO,
    SOLO_ENDPOINT,
    STRINGS,
    TRAIN_PY,
)
from categorical_report import report  # noqa: E402
from run import wrk  # noqa: E402


def data(work: Path) -> dict:
    """20k rows: four string columns (7 to 50 levels), four numbers, a binary label."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 20_000
    frame = pd.DataFrame(
        {c: rng.choice([f"{c[:3]}_{i}" for i in range(k)], n) for c, k in STRINGS.items()}
    )
    for c in NUMBERS:
        frame[c] = rng.normal(size=n).round(4)
    occ = frame["occupation"].str.split("_").str[1].astype(int)
    logit = frame["age"] + 0.5 * frame["hours"] + (occ % 3 - 1) + 0.3 * frame["capital"]
    frame["label"] = (logit + rng.normal(size=n) > 0).astype(int)
    frame["id"] = np.arange(n)
    work.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(work / "train.parquet")
    frame.to_csv(work / "train.csv", index=False)
    first = frame.iloc[0]
    return {c: (str(first[c]) if c in STRINGS else float(first[c])) for c in FEATURES}


def setup(work: Path, skip: set[str], rate_limit: float | None) -> dict[str, dict]:
    """Every server's command and request for the categorical case."""
    row = data(work)
    for seed in (0, 1, 2):  # the case floor's champion, canary and shadow, as loopml's three
        out = work / ("model.joblib" if seed == 0 else f"model_seed{seed}.joblib")
        harness.sh(
            [harness.PY, "-c", FIT_SAVE, str(work / "train.csv"), "joblib", str(out), str(seed)]
        )
    rows = {"rows": [row]}
    env = {
        "FLOOR_MODEL": str(work / "model.joblib"),
        "FLOOR_CANARY": str(work / "model_seed1.joblib"),
        "FLOOR_SHADOW": str(work / "model_seed2.joblib"),
    }
    model = work / "model.joblib"
    servers = {
        "per-request floor": harness.floor_spec(
            work / "floor", FLOOR_APP, model, rows, calls="stats"
        ),
        ONE_FLOOR: harness.floor_spec(
            work / "batching_floor", BATCHING_FLOOR_APP, model, rows, calls="stats"
        ),
        CASE_FLOOR: harness.floor_spec(
            work / "case_floor", CASE_FLOOR_APP, model, rows, calls="stats", env=env
        ),
    }
    # three versions trained by loopml's own pipeline: champion, 10% canary, one shadow; the
    # key as a user makes it, with --rate-limit a limit of its own
    params = [{"max_iter": 100, "seed": seed} for seed in (0, 1, 2)]
    proj = harness.train_and_deploy(work, TRAIN_PY, LOOPML_YAML, params)
    key = harness.predictor_key(proj, rate_limit)
    servers["loopml"] = harness.loopml_spec(proj, "benchcat", key, rows, calls="metrics")
    solo_endpoint(proj, "benchcat", SOLO_ENDPOINT)
    servers[SOLO] = harness.loopml_spec(proj, SOLO_ENDPOINT, key, rows, calls="metrics")
    if "mlflow" not in skip:
        body = {"dataframe_split": {"columns": list(FEATURES), "data": [list(row.values())]}}
        servers["mlflow (dataframe_split)"] = harness.mlflow_spec(
            work, FIT_SAVE, "mlflow", body, stderr=subprocess.DEVNULL
        )
    if "mlserver" not in skip:
        inputs = [
            {"name": c, "shape": [1], "datatype": "BYTES", "data": [row[c]]}
            | {"parameters": {"content_type": "str"}}
            for c in STRINGS
        ] + [{"name": c, "shape": [1], "datatype": "FP64", "data": [row[c]]} for c in NUMBERS]
        body = {"parameters": {"content_type": "pd"}, "inputs": inputs}
        servers["mlserver"] = harness.mlserver_spec(
            work, FIT_SAVE, "cat", body, stderr=subprocess.DEVNULL
        )
    return servers


def solo_endpoint(proj: Path, endpoint: str, solo: str) -> None:
    """Deploy ``endpoint``'s champion alone to a second endpoint ``solo`` of the project."""
    from loopml.config import load_config
    from loopml.store import Store

    store = Store(load_config(proj).store_url)
    try:
        row = store.endpoints.get(endpoint)
        store.endpoints.deploy(solo, store.versions.get(row["champion_id"]), actor="bench")
    finally:
        store.close()


# -- measuring --------------------------------------------------------------------------------


def model_calls(base: str, spec: dict) -> tuple[float, float] | None:
    """(calls, rows) of the model so far, where the server counts them."""
    if spec.get("calls") == "stats":
        s = httpx.get(base + "/stats", timeout=60).json()
        return float(s["calls"]), float(s["rows"])
    if spec.get("calls") == "metrics":
        text = httpx.get(base + "/metrics", timeout=60).text
        calls = sum(
            float(v) for v in re.findall(r"^loopml_batch_size_count\{.*\} (\S+)$", text, re.M)
        )
        rows = sum(float(v) for v in re.findall(r"^loopml_batch_size_sum\{.*\} (\S+)$", text, re.M))
        return calls, rows
    return None


def calibrate(work: Path) -> tuple[float, float]:
    """(a, b): the model's CPU seconds per call ~ a + b * rows, on core 0."""
    import numpy as np

    out = subprocess.run(
        [
            "taskset",
            "-c",
            "0",
            harness.PY,
            "-c",
            CALIBRATE,
            str(work / "model.joblib"),
            str(work / "train.csv"),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    ).stdout
    costs = {int(k): v for k, v in json.loads(out).items()}
    n = np.array(list(costs), dtype=float)
    b, a = np.polyfit(n, np.array(list(costs.values())), 1)
    print(
        "model predict_proba CPU per call: "
        + ", ".join(f"{k} rows {v * 1000:.2f} ms" for k, v in costs.items()),
        flush=True,
    )
    return float(a), float(max(b, 0.0))


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def level(spec: dict, base: str, conns: int, seconds: int, work: Path, cost) -> dict:
    """One measured load level of a running server: wrk's figures, with CPU per request, its
    model share (``cost``: :func:`calibrate`) and model calls per request."""
    snap: dict[str, object] = {}

    def before() -> None:
        snap["cpu"] = harness.session_cpu(spec["pgid"])
        snap["calls"] = model_calls(base, spec)

    res = wrk(base + spec["path"], spec, conns, seconds, work, between=before)
    cpu = harness.session_cpu(spec["pgid"]) - snap["cpu"]
    ok = max(res["total"] - res["errors"], 1)
    after = model_calls(base, spec)
    if after is not None and snap["calls"] is not None:
        calls = after[0] - snap["calls"][0]
        rows = after[1] - snap["calls"][1]
    else:
        calls = rows = ok
    res["cpu_ms"] = cpu / ok * 1000
    res["model_ms"] = (cost[0] * calls + cost[1] * rows) / ok * 1000
    res["calls_per_req"] = calls / ok
    return res


def measure(servers: dict[str, dict], seconds: int, work: Path, cost: tuple[float, float]):
    results: dict[tuple[str, int], dict] = {}
    for name, spec in servers.items():
        print(f"== {name} (load average {load_average()})", flush=True)
        with harness.running(spec) as base:
            for conns in (16, 64):
                res = level(spec, base, conns, seconds, work, cost)
                res["load"] = float(load_average().split()[0])  # 1-minute, after the level
                results[name, conns] = res
                print(
                    f"   c{conns}: {res['rps']:.0f} req/s  p50 {res['p50']:.1f} ms  "
                    f"p99 {res['p99']:.1f} ms  errors {res['errors']}  "
                    f"CPU/req {res['cpu_ms']:.2f} ms (model {res['model_ms']:.2f}, "
                    f"{res['calls_per_req']:.2f} calls/req)",
                    flush=True,
                )
    return results


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="the categorical pipeline serving benchmark")
    p.add_argument("--quick", action="store_true", help="5 s per load level instead of 20 s")
    p.add_argument("--skip", default="", help="comma-separated: mlflow,mlserver")
    p.add_argument("--only", default="", help="comma-separated server names to run")
    p.add_argument(
        "--rate-limit",
        type=float,
        default=1e6,
        help="the loopml key's own rate limit in requests/s (0: the server default, 1000/s)",
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="measure every server N times (median, min-max)"
    )
    p.add_argument("--work", default=str(harness.REPO / "bench" / ".work" / "serving_categorical"))
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    seconds = 5 if args.quick else 20
    work = Path(args.work)
    print(f"load average at start: {load_average()}", flush=True)
    servers = setup(work, set(filter(None, args.skip.split(","))), args.rate_limit or None)
    if args.only:
        keep = set(args.only.split(","))
        servers = {k: v for k, v in servers.items() if k in keep}
    cost = calibrate(work)
    t0 = time.time()
    runs = []
    for i in range(args.repeat):
        if args.repeat > 1:
            print(f"\n#### run {i + 1} of {args.repeat}", flush=True)
        runs.append(measure(servers, seconds, work, cost))
        report(runs[-1:], seconds)
    if args.repeat > 1:
        print(f"\n#### all {args.repeat} runs: median (min-max)")
        report(runs, seconds)
    print(f"\nload average at end: {load_average()} ({time.time() - t0:.0f} s of load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
