"""Serving benchmark: loopml vs `mlflow models serve` vs MLServer vs a bare Starlette floor.

The same scikit-learn LogisticRegression on 20 numeric features (make_classification, 20k
rows) behind each server, one single-row JSON POST per request, loaded by wrk on 127.0.0.1 at
concurrency 16 and 64. Each server is pinned to core 0 (taskset), wrk to core 1, as in the
research note (serving.md §1). loopml runs as configured for production: auth on (a
predictor key), canary at 10%, one shadow mirroring all traffic, durable prediction log.

    .venv/bin/python bench/serving/run.py            # both cases, 20 s per load level
    .venv/bin/python bench/serving/run.py --quick    # 5 s per load level
    .venv/bin/python bench/serving/run.py --case lr  # this case only (categorical.py: the other)

MLflow runs twice: a DataFrame-fitted model with a column signature, sent ``dataframe_split``
(named columns, as loopml's request), and an array-fitted model sent ``inputs`` (a bare tensor,
MLflow's fastest path). MLflow and MLServer get their own venvs under bench/.venvs/ (created on first run). MLServer
runs with uvloop<0.22 and parallel_workers=0 (its default config crashes with uvloop 0.23, and
in-process inference is its fastest mode; serving.md §3.4).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENVS = REPO / "bench" / ".venvs"
PY = sys.executable
N_FEATURES = 20


def sh(cmd: list[str], **kw) -> None:
    subprocess.run(cmd, check=True, **kw)


def venv(name: str, packages: list[str]) -> Path:
    """bench/.venvs/<name> with ``packages`` installed (created once)."""
    path = VENVS / name
    py = path / "bin" / "python"
    if not (path / ".ready").exists():
        print(f"creating {path} ({' '.join(packages)}) ...", flush=True)
        sh(["python3", "-m", "venv", str(path)])
        sh([str(py), "-m", "pip", "install", "-q", *packages])
        (path / ".ready").touch()
    return py


def data(work: Path):
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(20_000, N_FEATURES, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(N_FEATURES)])
    frame["label"] = y
    frame["id"] = np.arange(len(frame))
    work.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(work / "train.parquet")
    frame.to_csv(work / "train.csv", index=False)  # for the other venvs (no pyarrow needed)
    return frame


TRAIN_PY = """
from sklearn.linear_model import LogisticRegression


def train(X, y, params, seed=0):
    return LogisticRegression(C=params.get("C", 1.0), max_iter=1000).fit(X, y)
"""

LOOPML_YAML = """\
project: bench
data: {train: train.parquet, target: label, id: id}
model: {name: bench, train: train.py:train}
gates: {champion: {blocking: false}}
deploy: {endpoint: bench}
serve: {rate_limit_per_s: 1000000, rate_burst: 1000000}
"""

FIT_SAVE = """
import sys, joblib, pandas as pd
from sklearn.linear_model import LogisticRegression
frame = pd.read_csv(sys.argv[1])
X, y = frame[[f"f{i}" for i in range(20)]], frame["label"].to_numpy()
if sys.argv[2] != "mlflow-columns":  # a tensor signature: the model is fitted on an array
    X = X.to_numpy()
model = LogisticRegression(max_iter=1000).fit(X, y)
if sys.argv[2].startswith("mlflow"):
    import mlflow.sklearn
    from mlflow.models import infer_signature
    mlflow.sklearn.save_model(model, sys.argv[3], signature=infer_signature(X, y))
else:
    joblib.dump(model, sys.argv[3])
"""

FLOOR_APP = """
import os, joblib, numpy as np, orjson
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

model = joblib.load(os.environ["FLOOR_MODEL"])
names = [f"f{i}" for i in range(20)]


async def predict(request):
    rows = orjson.loads(await request.body())["rows"]
    X = np.array([[r[n] for n in names] for r in rows], dtype=np.float64)
    out = {"predictions": model.predict(X), "probabilities": model.predict_proba(X)}
    return Response(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY),
                    media_type="application/json")


async def health(request):
    return Response(b"ok")

app = Starlette(routes=[Route("/predict", predict, methods=["POST"]),
                        Route("/health", health)])
"""


def setup(work: Path, skip: set[str]) -> dict[str, dict]:
    """Build every server's model and command; returns name -> {cmd, env, url, body, ...}."""
    frame = data(work)
    row = {f"f{i}": round(float(frame.iloc[0, i]), 6) for i in range(N_FEATURES)}
    vec = list(row.values())
    servers: dict[str, dict] = {}

    # bare Starlette floor (main venv: uvicorn + uvloop + httptools)
    floor = work / "floor"
    floor.mkdir(exist_ok=True)
    sh([PY, "-c", FIT_SAVE, str(work / "train.csv"), "joblib", str(floor / "model.joblib")])
    (floor / "floor_app.py").write_text(FLOOR_APP)
    servers["starlette floor"] = {
        "cmd": [
            PY,
            "-m",
            "uvicorn",
            "floor_app:app",
            "--port",
            "{port}",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        "cwd": floor,
        "env": {"FLOOR_MODEL": str(floor / "model.joblib")},
        "path": "/predict",
        "health": "/health",
        "body": {"rows": [row]},
        "headers": {},
    }

    # loopml: trained and registered through its own pipeline; canary 10% + one shadow
    from loopml.config import load_config
    from loopml.store import Store
    from loopml.train import run

    proj = work / "loopml"
    if proj.exists():
        shutil.rmtree(proj)
    proj.mkdir()
    shutil.copy(work / "train.parquet", proj / "train.parquet")
    (proj / "train.py").write_text(TRAIN_PY)
    (proj / "loopml.yaml").write_text(LOOPML_YAML)
    cfg = load_config(proj)
    store = Store(cfg.store_url)
    ids = []
    for c in (1.0, 0.5, 0.25):
        cfg.model.params = {"C": c}
        ids.append(run(cfg, store=store).version["id"])
    store.endpoints.deploy("bench", store.versions.get(ids[0]), actor="bench")
    store.endpoints.deploy("bench", store.versions.get(ids[1]), actor="bench", canary=10)
    store.endpoints.deploy("bench", store.versions.get(ids[2]), actor="bench", shadow=True)
    key, _ = store.keys.create("predictor", actor="bench", rate_per_s=1e6)
    store.close()
    servers["loopml"] = {
        "cmd": [PY, "-m", "loopml.cli", "-c", str(proj), "serve", "--port", "{port}"],
        "cwd": proj,
        "env": {},
        "path": "/v1/endpoints/bench/predict",
        "health": "/v2/health/ready",
        "body": {"rows": [row]},
        "headers": {"Authorization": f"Bearer {key}"},
        "stderr": subprocess.DEVNULL,
    }

    if "mlflow" not in skip:
        # Two MLflow anchors: named columns (a DataFrame-fitted model with a column signature,
        # sent as ``dataframe_split``: the same information loopml's request carries) and a
        # bare tensor (an array-fitted model, sent as ``inputs``: MLflow's fastest path).
        py = venv("mlflow", ["mlflow", "scikit-learn==1.9.1"])
        names = [f"f{i}" for i in range(N_FEATURES)]
        for mode, label, body in (
            (
                "mlflow-columns",
                "mlflow (dataframe_split)",
                {"dataframe_split": {"columns": names, "data": [vec]}},
            ),
            ("mlflow", "mlflow (inputs)", {"inputs": [vec]}),
        ):
            model_dir = work / f"{mode}_model"
            shutil.rmtree(model_dir, ignore_errors=True)
            sh([str(py), "-c", FIT_SAVE, str(work / "train.csv"), mode, str(model_dir)])
            servers[label] = {
                "cmd": [
                    str(py.parent / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    str(model_dir),
                    "--env-manager",
                    "local",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    "{port}",
                ],
                "cwd": work,
                "env": {"PATH": f"{py.parent}:{os.environ['PATH']}"},
                "path": "/invocations",
                "health": "/ping",
                "body": body,
                "headers": {},
            }

    if "mlserver" not in skip:
        py = venv(
            "mlserver", ["mlserver", "mlserver-sklearn", "uvloop<0.22", "scikit-learn==1.9.1"]
        )
        msdir = work / "mlserver"
        (msdir / "lr").mkdir(parents=True, exist_ok=True)
        sh(
            [
                str(py),
                "-c",
                FIT_SAVE,
                str(work / "train.csv"),
                "joblib",
                str(msdir / "lr" / "model.joblib"),
            ]
        )
        (msdir / "lr" / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": "lr",
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": "./model.joblib"},
                }
            )
        )
        servers["mlserver"] = {
            "cmd": [str(py.parent / "mlserver"), "start", str(msdir)],
            "cwd": msdir,
            "env": {
                "MLSERVER_HTTP_PORT": "{port}",
                "MLSERVER_GRPC_PORT": "{grpc}",
                "MLSERVER_METRICS_PORT": "{metrics}",
                "MLSERVER_PARALLEL_WORKERS": "0",
                "MLSERVER_DEBUG": "false",
                "MLSERVER_HOST": "127.0.0.1",
                "PATH": f"{py.parent}:{os.environ['PATH']}",
            },
            "path": "/v2/models/lr/infer",
            "health": "/v2/models/lr/ready",
            "body": {
                "inputs": [{"name": "x", "shape": [1, N_FEATURES], "datatype": "FP64", "data": vec}]
            },
            "headers": {},
        }
    return servers


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(spec: dict):
    ports = {"port": free_port(), "grpc": free_port(), "metrics": free_port()}
    cmd = [c.format(**ports) for c in spec["cmd"]]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        **{k: v.format(**ports) for k, v in spec["env"].items()},
    }
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *cmd],
        cwd=spec["cwd"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=spec.get("stderr"),
        start_new_session=True,
    )
    spec["pgid"] = proc.pid  # the server's session: its CPU is read from /proc by pgrp
    base = f"http://127.0.0.1:{ports['port']}"
    try:
        deadline = time.time() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + spec["health"], timeout=2).status_code == 200:
                    break
            if time.time() > deadline:
                raise RuntimeError(f"{cmd[0]} did not become healthy")
            time.sleep(0.3)
        # a busy box can take seconds to answer the first request (its models warming)
        r = httpx.post(base + spec["path"], json=spec["body"], headers=spec["headers"], timeout=60)
        if r.status_code != 200:
            raise RuntimeError(f"{cmd[0]}: probe request failed: {r.status_code} {r.text[:300]}")
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


LUA = """
wrk.method = "POST"
wrk.body = {body}
{headers}
"""


def wrk(url: str, spec: dict, conns: int, seconds: int, work: Path, between=None) -> dict:
    """One measured run after a 2 s warm-up; ``between()`` is called after the warm-up."""
    headers = {"Content-Type": "application/json", **spec["headers"]}
    script = work / "wrk.lua"
    script.write_text(
        LUA.format(
            body=json.dumps(json.dumps(spec["body"])),
            headers="\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
        )
    )
    base = ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", "--latency", "--timeout", "30s"]
    base += ["-s", str(script)]  # a 30 s timeout: slow servers are measured, not cut off at 2 s
    subprocess.run([*base, "-d2s", url], capture_output=True, check=True)  # warm-up
    if between is not None:
        between()
    out = subprocess.run(
        [*base, f"-d{seconds}s", url], capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    ok_rps = rps * (1 - errors / total) if total else 0.0
    return {"rps": ok_rps, "p50": pct("50"), "p99": pct("99"), "errors": errors, "total": total}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="5 s per load level instead of 20 s")
    p.add_argument("--skip", default="", help="comma-separated: mlflow,mlserver")
    p.add_argument("--work", default=str(REPO / "bench" / ".work" / "serving"))
    p.add_argument(
        "--case",
        choices=("lr", "categorical", "all"),
        default="all",
        help="lr: LogisticRegression on 20 floats; categorical: the pipeline of categorical.py",
    )
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    if args.case != "lr":
        import categorical

        passed = ["--skip", args.skip, *(["--quick"] if args.quick else [])]
        rc = categorical.main(passed)
        if args.case == "categorical" or rc:
            return rc
    seconds = 5 if args.quick else 20
    work = Path(args.work)
    servers = setup(work, set(filter(None, args.skip.split(","))))
    results: dict[tuple[str, int], dict] = {}
    for name, spec in servers.items():
        print(f"== {name}", flush=True)
        with running(spec) as base:
            for conns in (16, 64):
                res = wrk(base + spec["path"], spec, conns, seconds, work)
                results[name, conns] = res
                print(
                    f"   c{conns}: {res['rps']:.0f} req/s  p50 {res['p50']:.1f} ms  "
                    f"p99 {res['p99']:.1f} ms  errors {res['errors']}",
                    flush=True,
                )
    floor = "starlette floor"
    print(f"\n{seconds} s per level; servers on core 0, wrk on core 1 (req/s counts 2xx only)\n")
    head = "| server | conc | req/s | p50 ms | p99 ms | errors | loopml / this |"
    print(head + "\n" + "|---" * 7 + "|")
    for (name, conns), r in results.items():
        lm = results.get(("loopml", conns))
        ratio = f"{lm['rps'] / r['rps']:.2f}x" if lm and r["rps"] else "-"
        print(
            f"| {name} | {conns} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | "
            f"{r['errors']} | {ratio} |"
        )
    for conns in (16, 64):
        lm = results.get(("loopml", conns))
        if not lm:
            continue
        goals = []
        for mlflow in ("mlflow (dataframe_split)", "mlflow (inputs)"):
            if (mlflow, conns) in results:
                x = lm["rps"] / results[mlflow, conns]["rps"]
                goals.append(
                    f"vs {mlflow} {x:.1f}x (goal >= 10x: {'met' if x >= 10 else 'NOT met'})"
                )
        if (floor, conns) in results:
            x = lm["rps"] / results[floor, conns]["rps"]
            goals.append(f"vs floor {x:.0%} (goal >= 70%: {'met' if x >= 0.7 else 'NOT met'})")
        print(textwrap.fill(f"c{conns}: loopml " + "; ".join(goals), 100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
