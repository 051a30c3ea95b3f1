"""Batch scoring: ``loopml score`` on the local engine and on Ray beside a plain pandas +
``model.predict`` loop over the same Parquet file, in the same run, with peak memory.

    python bench/scoring/run.py [--rows 10000000] [--quick] [--dir /tmp/loopml-bench-scoring]

The input is ``--rows`` x 20 float columns (plus an ``id``), written in row groups of 131,072
rows; the model is a scikit-learn pipeline (StandardScaler + LogisticRegression) registered
by the real ``loopml run``. Every variant runs as its own process; its wall time includes
loading the model (and, for Ray, starting Ray and its workers) and writing the output. Peak
memory is the largest sum of the resident memory of the process and all its descendants
(Ray's raylet, object store and workers included), sampled every 50 ms from /proc.
``loopml score`` also validates every row and writes the prediction log; the plain loop does
neither. Prints one line per variant and the ratios to the plain loop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench/, after this folder

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from harness import tree_usage

HERE = Path(__file__).parent
SRC = HERE.parent.parent / "src"
N_FEATURES = 20
ROW_GROUP = 131_072

TRAIN_PY = """
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def train(X, y, params, seed=0):
    return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=500))]).fit(X, y)
"""

CONFIG = """\
project: benchscore
data: {train: data/train.parquet, target: label, id: id}
model: {name: benchscore, train: train.py:train}
gates: {champion: {blocking: false}}
deploy: {endpoint: bench}
"""


def _frame(rng: np.random.Generator, n: int, start: int) -> pd.DataFrame:
    X = rng.normal(size=(n, N_FEATURES))
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(N_FEATURES)])
    df["id"] = np.arange(start, start + n)
    return df


def make_input(path: Path, rows: int) -> None:
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
        return
    rng = np.random.default_rng(0)
    writer = None
    done = 0
    while done < rows:
        n = min(1_048_576, rows - done)
        table = pa.Table.from_pandas(_frame(rng, n, done), preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=ROW_GROUP)
        done += n
    assert writer is not None
    writer.close()


def make_project(root: Path) -> int:
    if (root / "version.txt").exists():
        return int((root / "version.txt").read_text())
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    rng = np.random.default_rng(1)
    df = _frame(rng, 20_000, 0)
    logit = df["f0"] - 0.5 * df["f1"] + 0.25 * df["f2"]
    df["label"] = (rng.random(len(df)) < 1 / (1 + np.exp(-logit))).astype(int)
    df.to_parquet(root / "data" / "train.parquet")
    (root / "train.py").write_text(TRAIN_PY)
    (root / "loopml.yaml").write_text(CONFIG)
    out = subprocess.run(
        [sys.executable, "-m", "loopml.cli", "-c", str(root), "run", "--json"],
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    version = int(json.loads(out.stdout)["version"])
    subprocess.run(
        [sys.executable, "-m", "loopml.cli", "-c", str(root), "deploy", "bench", str(version)],
        env=_env(),
        check=True,
        capture_output=True,
    )
    (root / "version.txt").write_text(str(version))
    return version


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{SRC}:{env.get('PYTHONPATH', '')}".rstrip(":")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("RAY_AUTH_MODE", "disabled")
    return env


def measure(cmd: list[str]) -> tuple[float, int, float, str]:
    """(wall seconds, peak tree RSS bytes, CPU seconds of the tree, output) of ``cmd``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0]
    cpu: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_usage(proc.pid, cpu))
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    t.join()
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err.decode()[-2000:]}")
    return wall, peak[0], sum(cpu.values()), out.decode() + err.decode()


def _inner_seconds(name: str, out: str) -> float:
    """Seconds the variant reports for itself (model loaded, scoring, output written)."""
    if name == "plain":
        return float(out.rsplit("seconds=", 1)[1].split()[0])
    return float(json.loads(out[: out.rindex("}") + 1])["seconds"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--quick", action="store_true", help="1M rows")
    p.add_argument("--dir", default="/tmp/loopml-bench-scoring")
    p.add_argument("--cpus", type=int, default=2, help="CPUs for Ray")
    p.add_argument("--skip", action="append", default=[], choices=["plain", "local", "ray"])
    args = p.parse_args()
    rows = 1_000_000 if args.quick else args.rows
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"input-{rows}.parquet"
    t = time.perf_counter()
    make_input(src, rows)
    size = src.stat().st_size
    print(
        f"input: {rows:,} rows x {N_FEATURES} float columns + id, {size / 1e6:,.0f} MB "
        f"({time.perf_counter() - t:.0f} s to make or check)"
    )
    project = work / "project"
    version = make_project(project)
    py = sys.executable
    score = [py, "-m", "loopml.cli", "-c", str(project), "score", "bench", "--input", str(src)]
    plain = [str(project), str(version), str(src), str(work / "out-plain.parquet"), "262144"]
    variants = {
        "plain": [py, str(HERE / "plain_loop.py"), *plain],
        "local": [*score, "--output", str(work / "out-local"), "--engine", "local", "--json"],
        "ray": [
            *score,
            *("--output", str(work / "out-ray"), "--engine", "ray"),
            *("--cpus", str(args.cpus), "--json"),
        ],
    }
    results: dict[str, tuple[float, int, float]] = {}
    for name, cmd in variants.items():
        if name in args.skip:
            continue
        for leftover in (work / "out-local", work / "out-ray", work / "out-plain.parquet"):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(
                missing_ok=True
            )
        shutil.rmtree(project / ".loopml" / "artifacts" / "predlog", ignore_errors=True)
        wall, peak, cpu, out = measure(cmd)
        results[name] = (wall, peak, cpu)
        inner = _inner_seconds(name, out)
        print(
            f"{name:>6}: {wall:7.1f} s wall  {rows / wall:12,.0f} rows/s  "
            f"(scoring alone {inner:6.1f} s, {rows / inner:12,.0f} rows/s)  "
            f"CPU {cpu:6.1f} s  peak RSS {peak / 1e6:,.0f} MB",
            flush=True,
        )
    if "plain" in results:
        base = results["plain"][0]
        for name, (wall, _, cpu) in results.items():
            if name != "plain":
                print(
                    f"{name} / plain: throughput {base / wall:.2f}x, "
                    f"rows per CPU-second {results['plain'][2] / cpu:.2f}x"
                )
    print(f"machine: {os.cpu_count()} CPUs (shared); OMP_NUM_THREADS={_env()['OMP_NUM_THREADS']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
