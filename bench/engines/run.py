"""``loopml monitor --engine ray`` beside ``--engine local`` on one large generated window.

    python bench/engines/run.py [--rows 100000000] [--parts 40] [--cpus 2] [--dir PATH]

A project is trained by the real ``loopml run`` (20 float features, a scikit-learn pipeline).
Its prediction log gets ``--rows`` rows in one hour, written as ``--parts`` Parquet parts in
the log's layout with the columns batch scoring writes (``loopml.scoring.scorer.log_table``);
half of the parts have 8 of the 20 features shifted by one standard deviation, so the window drifts. The rows are generated and
written part by part (never all in memory). Then one monitoring pass runs per engine, each in
its own process on its own copy of the store, reading the same parts: wall time, CPU seconds
and peak resident memory of the process tree (Ray's processes included, sampled from /proc),
and the drift verdicts of both, which must be equal.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("scoring_bench", HERE.parent / "scoring" / "run.py")
assert _spec is not None and _spec.loader is not None
sb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sb)

LOG = Path(".loopml/artifacts/predlog")  # the default artifacts root holds the log
HOUR0 = 1_764_547_200  # 2025-12-01T00:00Z: an hour boundary in the past, so the window is closed


def write_parts(project: Path, version: int, rows: int, parts: int) -> None:
    """``rows`` log rows in one hour as ``parts`` parts (generated and written one by one)."""
    sys.path.insert(0, str(sb.SRC))
    import fsspec

    from loopml.engines.chunks import put_part
    from loopml.scoring.scorer import Job, log_table, request_ids
    from loopml.serve.inference.request_rows import Batch

    folder = project / LOG / "endpoint=bench" / "hour=2025120100"
    marker = folder / f"_done-{rows}-{parts}"
    if marker.exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    job = Job(None, version, "bench", "gen", HOUR0 * 1_000_000 + 1, "")  # type: ignore[arg-type]
    per = rows // parts
    for i in range(parts):
        n = per if i < parts - 1 else rows - per * (parts - 1)
        block = rng.normal(size=(sb.N_FEATURES, n))
        if i >= parts // 2:
            block[:8] += 1.0  # the second half of the hour drifts on f0..f7
        cols = {f"f{j}": block[j] for j in range(sb.N_FEATURES)}
        score = 1 / (1 + np.exp(-block[0]))
        proba = np.stack([1 - score, score], axis=1)
        table = log_table(
            job, request_ids(n, HOUR0 * 1000), Batch(cols, n), (score > 0.5).astype(int), proba
        )
        put_part(fsspec.filesystem("file"), str(folder / f"part-gen-{i:04d}.parquet"), table)
    marker.touch()


def verdicts(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "select role, rows, drifted, n_drifted, round(drift_score, 9) from monitor_windows "
            "order by start, role"
        ).fetchall()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=100_000_000)
    p.add_argument("--parts", type=int, default=40)
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--dir", default="/tmp/loopml-bench-engines")
    args = p.parse_args()
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    base = work / "project"
    version = sb.make_project(base)
    t = time.perf_counter()
    write_parts(base, version, args.rows, args.parts)
    size = sum(f.stat().st_size for f in (base / LOG).rglob("*.parquet"))
    print(
        f"window: {args.rows:,} rows x {sb.N_FEATURES} features in {args.parts} parts, "
        f"{size / 1e9:.2f} GB of Parquet ({time.perf_counter() - t:.0f} s to make or check)",
        flush=True,
    )
    results = {}
    for engine in ("local", "ray"):
        copy = work / f"project-{engine}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(base, copy, ignore=shutil.ignore_patterns("predlog"))
        (copy / LOG).symlink_to(base / LOG)
        cmd = [
            sys.executable,
            "-m",
            "loopml.cli",
            "-c",
            str(copy),
            "monitor",
            "--json",
            "--engine",
            engine,
        ]
        if engine == "ray":
            cmd += ["--cpus", str(args.cpus)]
        wall, peak, cpu, out = sb.measure(cmd)
        found = verdicts(copy / ".loopml" / "loopml.db")
        results[engine] = (wall, peak, cpu, found)
        print(
            f"{engine:>6}: {wall:7.1f} s wall  {args.rows / wall:12,.0f} rows/s  CPU {cpu:7.1f} s  "
            f"peak RSS {peak / 1e6:,.0f} MB  windows {found}",
            flush=True,
        )
        json.loads(out[out.index("{") : out.rindex("}") + 1])
    (lw, lp, lc, lv), (rw, rp, rc, rv) = results["local"], results["ray"]
    print(
        f"ray / local: wall {rw / lw:.2f}x, CPU {rc / lc:.2f}x, peak memory {rp / lp:.2f}x; "
        f"equal verdicts: {lv == rv}"
    )
    print(f"machine: {os.cpu_count()} CPUs (shared); Ray given --cpus {args.cpus}")
    return 0 if lv == rv else 1


if __name__ == "__main__":
    sys.exit(main())
