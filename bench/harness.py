"""What the benchmark suites share: anchor virtualenvs, process CPU and memory, servers.

A suite is a script run as ``python bench/<suite>/<script>.py``; it reaches this module with
``sys.path.append`` of bench/ (appended, so that a suite's own ``run`` module still wins over
bench/run.py). Only the standard library is imported here at module level, because the monitoring
anchors import it from their own virtualenv, where loopml and its dependencies are absent.

- ``venv``: an anchor's virtualenv under bench/.venvs/ (created once, never loopml's own);
- ``Clock``, ``own_cpu``, ``peak_rss_mb``, ``rss_mb``, ``processes``, ``session_cpu``,
  ``tree_usage``: wall time, CPU and resident memory of this process, another process, its session
  or its tree of descendants, read from getrusage and /proc (Linux);
- ``free_port``, ``running``: a server on 127.0.0.1 from a spec (its command, environment, health
  and probe request), started in its own session, healthy before its first measurement;
- ``floor_spec``, ``mlflow_spec``, ``mlserver_spec``, ``train_and_deploy``, ``predictor_key``,
  ``loopml_spec``: the
  serving suite's servers, one scikit-learn model behind each.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENVS = BENCH / ".venvs"
PY = sys.executable


def sh(cmd: list[str], **kw: Any) -> None:
    subprocess.run(cmd, check=True, **kw)


def venv(name: str, packages: list[str]) -> Path:
    """The python of bench/.venvs/<name> with ``packages`` installed (created once)."""
    path = VENVS / name
    py = path / "bin" / "python"
    if not (path / ".ready").exists():
        print(f"creating {path} ({' '.join(packages)}) ...", flush=True)
        sh(["python3", "-m", "venv", str(path)])
        sh([str(py), "-m", "pip", "install", "-q", *packages])
        (path / ".ready").touch()
    return py


# -- time, CPU and memory --------------------------------------------------------------------


def own_cpu() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    """The peak resident memory of this process, in MB (Linux reports ru_maxrss in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb(pid: int | str = "self") -> float:
    """The resident memory of a process now, in MB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Clock:
    """Wall and CPU seconds of a block: ``with Clock() as c: ...`` then ``c.wall``, ``c.cpu``."""

    def __enter__(self) -> Clock:
        self.wall = self.cpu = 0.0
        self._t0, self._c0 = time.perf_counter(), own_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t0
        self.cpu = own_cpu() - self._c0


class Proc(NamedTuple):
    ppid: int
    session: int
    rss: int  # bytes
    cpu: float  # utime + stime, seconds


def processes() -> dict[int, Proc]:
    """Every live process, from /proc/<pid>/stat (see proc(5); fields after pid and comm)."""
    tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    out: dict[int, Proc] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            f = stat[stat.rindex(")") + 2 :].split()  # f[0] is field 3, state
            out[int(entry.name)] = Proc(
                ppid=int(f[1]),
                session=int(f[3]),
                rss=int(f[21]) * page,
                cpu=(int(f[11]) + int(f[12])) / tick,
            )
        except (OSError, IndexError, ValueError):
            continue
    return out


def session_cpu(sid: int) -> float:
    """CPU seconds (user + system) of every live process in session ``sid``."""
    return sum(p.cpu for p in processes().values() if p.session == sid)


def tree_usage(pid: int, cpu: dict[int, float] | None = None) -> int:
    """Resident bytes of ``pid`` and all its descendants; ``cpu`` collects the CPU seconds last
    seen of each process of the tree (a process that has exited keeps its last reading)."""
    procs = processes()
    children: dict[int, list[int]] = {}
    for child, p in procs.items():
        children.setdefault(p.ppid, []).append(child)
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        if p in procs:
            total += procs[p].rss
            if cpu is not None:
                cpu[p] = max(cpu.get(p, 0.0), procs[p].cpu)
        stack.extend(children.get(p, ()))
    return total


# -- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(spec: dict):  # type: ignore[no-untyped-def]
    """The server of ``spec`` on core 0, healthy and answering its probe; yields its base URL.

    ``{port}``, ``{grpc}`` and ``{metrics}`` in its command and environment become free ports;
    ``spec["pgid"]`` is set to its session (and process group) id, for ``session_cpu``."""
    import httpx

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
    spec["pgid"] = proc.pid
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


# Each anchor is fitted by a FIT_SAVE script run as ``FIT_SAVE train.csv MODE OUT``: MODE
# "joblib" dumps the model with joblib, MODE "mlflow..." saves an MLflow model folder.
SKLEARN = "scikit-learn==1.9.1"
UVICORN = ("--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning")


def floor_spec(folder: Path, app: str, model: Path, body: dict, **extra: Any) -> dict:
    """A bare Starlette app (``app``'s source, loading ``model``) in the main venv's uvicorn."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(app)
    return {
        "cmd": [PY, "-m", "uvicorn", "app:app", "--port", "{port}", *UVICORN],
        "cwd": folder,
        "env": {"FLOOR_MODEL": str(model)},
        "path": "/predict",
        "health": "/health",
        "body": body,
        "headers": {},
        **extra,
    }


def mlflow_spec(work: Path, fit_save: str, mode: str, body: dict, **extra: Any) -> dict:
    """``mlflow models serve`` of the model FIT_SAVE writes in MODE, in bench/.venvs/mlflow."""
    py = venv("mlflow", ["mlflow", SKLEARN])
    model_dir = work / f"{mode}_model"
    shutil.rmtree(model_dir, ignore_errors=True)
    sh([str(py), "-c", fit_save, str(work / "train.csv"), mode, str(model_dir)])
    serve = ["models", "serve", "-m", str(model_dir), "--env-manager", "local"]
    return {
        "cmd": [str(py.parent / "mlflow"), *serve, "-h", "127.0.0.1", "-p", "{port}"],
        "cwd": work,
        "env": {"PATH": f"{py.parent}:{os.environ['PATH']}"},
        "path": "/invocations",
        "health": "/ping",
        "body": body,
        "headers": {},
        **extra,
    }


def mlserver_spec(work: Path, fit_save: str, model: str, body: dict, **extra: Any) -> dict:
    """MLServer (mlserver-sklearn, in-process inference) with one model named ``model``.

    uvloop<0.22 and parallel_workers=0: its default config crashes with uvloop 0.23, and
    in-process inference is its fastest mode."""
    py = venv("mlserver", ["mlserver", "mlserver-sklearn", "uvloop<0.22", SKLEARN])
    msdir = work / "mlserver"
    (msdir / model).mkdir(parents=True, exist_ok=True)
    out = msdir / model / "model.joblib"
    sh([str(py), "-c", fit_save, str(work / "train.csv"), "joblib", str(out)])
    settings = {
        "name": model,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }
    (msdir / model / "model-settings.json").write_text(json.dumps(settings))
    return {
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
        "path": f"/v2/models/{model}/infer",
        "health": f"/v2/models/{model}/ready",
        "body": body,
        "headers": {},
        **extra,
    }


def train_and_deploy(work: Path, train_py: str, yaml: str, params: list[dict]) -> Path:
    """work/loopml: a project with work/train.parquet, trained by loopml's own pipeline once per
    entry of ``params`` (three): the first version is the champion of the configured endpoint,
    the second a 10% canary, the third a shadow."""
    from loopml.config import load_config
    from loopml.store import Store
    from loopml.train import run

    proj = work / "loopml"
    if proj.exists():
        shutil.rmtree(proj)
    proj.mkdir()
    shutil.copy(work / "train.parquet", proj / "train.parquet")
    (proj / "train.py").write_text(train_py)
    (proj / "loopml.yaml").write_text(yaml)
    cfg = load_config(proj)
    store = Store(cfg.store_url)
    ids = []
    for p in params:
        cfg.model.params = p
        ids.append(run(cfg, store=store).version["id"])
    endpoint = cfg.deploy.endpoint
    champion, canary, shadow = (store.versions.get(i) for i in ids)
    store.endpoints.deploy(endpoint, champion, actor="bench")
    store.endpoints.deploy(endpoint, canary, actor="bench", canary=10)
    store.endpoints.deploy(endpoint, shadow, actor="bench", shadow=True)
    store.close()
    return proj


def predictor_key(proj: Path, rate_limit: float | None) -> str:
    """A predictor key made as a user makes it (``loopml keys create``); with ``rate_limit`` it
    has a limit of its own (requests/s), else the server default."""
    create = [PY, "-m", "loopml.cli", "-c", str(proj), "keys", "create", "--role", "predictor"]
    if rate_limit:
        create += ["--rate-limit", f"{rate_limit:g}"]
    out = subprocess.run(create, capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1]


def loopml_spec(proj: Path, endpoint: str, key: str, body: dict, **extra: Any) -> dict:
    """``loopml serve`` of the project, asked with a predictor ``key``."""
    return {
        "cmd": [PY, "-m", "loopml.cli", "-c", str(proj), "serve", "--port", "{port}"],
        "cwd": proj,
        "env": {},
        "path": f"/v1/endpoints/{endpoint}/predict",
        "health": "/v2/health/ready",
        "body": body,
        "headers": {"Authorization": f"Bearer {key}"},
        "stderr": subprocess.DEVNULL,
        **extra,
    }
