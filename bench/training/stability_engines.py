"""``loopml run --engine ray`` beside ``--engine local`` on the employment example with the
stability gate on (``gates.stability.seeds``, default 5: four more trainings).

Each run is ``loopml run --json --engine E`` in a fresh copy of the project ``loopml init``
writes, as its own process (wall time includes starting Python and, for Ray, starting a local
Ray with ``--cpus`` CPUs and its workers). The engines alternate within a round, so both see
the same machine load; the table reports medians over ``--runs`` rounds. Every pair of runs
must register the same stability verdict and evidence (but for the timings) and the same
permutation importances, or the script stops.

Run: ``.venv/bin/python bench/training/stability_engines.py [--runs 3] [--seeds 5] [--cpus 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOPML = [sys.executable, "-m", "loopml.cli"]
TIMINGS = {"train_seconds", "seconds"}


def untimed(value: object) -> object:
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def loopml_run(project: Path, engine: str, cpus: int) -> dict[str, object]:
    """Wall time, the run's step timings, and what it registered (gates, importance)."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.pop("RAY_ADDRESS", None)
    argv = [*LOOPML, "run", "--json", "--engine", engine]
    if engine == "ray":
        argv += ["--cpus", str(cpus)]
    t = time.perf_counter()
    done = subprocess.run(argv, cwd=project, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if done.returncode not in (0, 1):
        sys.exit(f"loopml run failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr}")
    out = json.loads(done.stdout[done.stdout.index("{") :])
    with sqlite3.connect(project / ".loopml" / "loopml.db") as db:
        (extra,) = db.execute(
            "SELECT extra FROM versions WHERE id = ?", (out["version"],)
        ).fetchone()
    gates = {g["gate"]: g for g in out["gates"]}
    return {
        "wall": wall,
        "timings": out["timings"],
        "stability": gates["stability"],
        "importance": json.loads(extra)["importance"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    engines = ("local", "ray")
    got: dict[str, list[dict[str, object]]] = {e: [] for e in engines}
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template"
        subprocess.run([*LOOPML, "init", str(template)], check=True, capture_output=True)
        config = (template / "loopml.yaml").read_text()
        gates = f"gates:\n  stability: {{seeds: {args.seeds}}}\n"
        (template / "loopml.yaml").write_text(config.replace("gates:\n", gates, 1))
        for i in range(args.runs):
            for engine in engines:
                project = Path(tmp) / f"{engine}{i}"
                shutil.copytree(template, project)
                r = loopml_run(project, engine, args.cpus)
                got[engine].append(r)
                t = r["timings"]
                assert isinstance(t, dict)
                print(
                    f"round {i + 1} {engine:5}: wall {r['wall']:.1f} s; gates {t['gates']:.1f} s "
                    f"(stability {r['stability']['seconds']:.1f} s), register "
                    f"{t['register']:.1f} s, train {t['train']:.1f} s; stability "
                    f"{r['stability']['verdict']}",
                    flush=True,
                )
                shutil.rmtree(project / "data", ignore_errors=True)
            a, b = got["local"][-1], got["ray"][-1]
            if untimed(a["stability"]) != untimed(b["stability"]):
                sys.exit("the engines registered different stability verdicts or evidence")
            if a["importance"] != b["importance"]:
                sys.exit("the engines registered different permutation importances")
    print(f"\nmedians of {args.runs} rounds (seeds {args.seeds}, Ray with {args.cpus} CPUs):")
    for engine in engines:
        rs = got[engine]
        wall = statistics.median(float(r["wall"]) for r in rs)  # type: ignore[arg-type]
        stab = statistics.median(float(r["stability"]["seconds"]) for r in rs)  # type: ignore[index]
        print(f"  {engine:5}: loopml run {wall:.1f} s wall, stability gate {stab:.1f} s")
    print("same stability verdict and evidence, same importances: yes (every round)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
