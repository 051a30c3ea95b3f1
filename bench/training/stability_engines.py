"""``loopml run --engine ray`` beside ``--engine local`` on the employment example with the
stability gate on (``gates.stability.seeds``, default 5: four more trainings).

Each run is ``loopml run --json --engine E`` in a fresh copy of the project ``loopml init``
writes, as its own process (wall time includes starting Python and, for Ray, starting a local
Ray with ``--cpus`` CPUs and its workers); CPU seconds and peak resident memory are those of
the process tree, Ray's processes included (sampled from /proc as ``bench/scoring/run.py``
does). The engines alternate within a round, so both see the same machine load; the table
reports medians over ``--runs`` rounds. Every pair of runs
must register the same stability verdict and evidence (but for the timings) and the same
permutation importances, or the script stops.

Run: ``.venv/bin/python bench/training/stability_engines.py [--runs 3] [--seeds 5] [--cpus 2]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("scoring_bench", HERE.parent / "scoring" / "run.py")
assert _spec is not None and _spec.loader is not None
sb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sb)

LOOPML = [sys.executable, "-m", "loopml.cli"]
TIMINGS = {"train_seconds", "seconds"}


def untimed(value: object) -> object:
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def loopml_run(project: Path, engine: str, cpus: int) -> dict[str, object]:
    """Wall time, CPU seconds and peak memory of the process tree, the run's step timings, and
    what it registered (the stability verdict, the importances)."""
    argv = [*LOOPML, "-c", str(project), "run", "--json", "--engine", engine]
    if engine == "ray":
        argv += ["--cpus", str(cpus)]
    wall, peak, cpu, out = sb.measure(argv)
    result = json.loads(out[out.index("{") : out.rindex("}") + 1])
    with sqlite3.connect(project / ".loopml" / "loopml.db") as db:
        (extra,) = db.execute(
            "SELECT extra FROM versions WHERE id = ?", (result["version"],)
        ).fetchone()
    gates = {g["gate"]: g for g in result["gates"]}
    return {
        "wall": wall,
        "cpu": cpu,
        "peak_mb": peak / 2**20,
        "timings": result["timings"],
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
                stab = r["stability"]
                assert isinstance(stab, dict)
                sibs = " ".join(f"{x:.1f}" for x in stab["evidence"]["train_seconds"])
                print(
                    f"round {i + 1} {engine:5}: wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s, "
                    f"peak {r['peak_mb']:,.0f} MB; train {t['train']:.1f} s, stability gate "
                    f"{stab['seconds']:.1f} s (siblings {sibs} s), register {t['register']:.1f} s;"
                    f" stability {stab['verdict']}",
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
        med = {
            k: statistics.median(float(r[k]) for r in rs)  # type: ignore[arg-type]
            for k in ("wall", "cpu", "peak_mb")
        }
        stab = statistics.median(float(r["stability"]["seconds"]) for r in rs)  # type: ignore[index]
        print(
            f"  {engine:5}: loopml run {med['wall']:.1f} s wall, {med['cpu']:.1f} CPU s, peak "
            f"{med['peak_mb']:,.0f} MB; stability gate {stab:.1f} s"
        )
    print("same stability verdict and evidence, same importances: yes (every round)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
