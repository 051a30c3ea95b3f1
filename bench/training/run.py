"""`loopml run` overhead on the employment example (2015, 68,785 rows): the time loopml adds
beyond the user's training code, goal <= 3 s.

Each run is ``loopml run --json`` in a fresh copy of the project that ``loopml init`` writes
(so the store is created and migrated, as on a first run), then once more in the same copy
(an existing store with a parent version). The anchor is the user's own code, timed inside the
run: importing ``train.py`` plus calling ``train()``. Reported per run:

* ``loopml``: the run's wall time minus the user's code (what ``loopml run`` prints);
* ``process``: the whole command's wall time (interpreter start, imports, exit) minus the same.

Run: ``.venv/bin/python bench/training/run.py [--runs 5]``. Other load on the machine shows up
in both numbers, so compare medians from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOPML = str(Path(sys.executable).with_name("loopml"))
GOAL = 3.0


def loopml_run(project: Path) -> tuple[float, float, dict[str, float]]:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t = time.perf_counter()
    done = subprocess.run(
        [LOOPML, "run", "--json"], cwd=project, capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"loopml run failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr}")
    timings = json.loads(done.stdout[done.stdout.index("{") :])["timings"]
    user = timings["train"] + timings.get("train_import", 0.0)
    return timings["total"] - user, wall - user, timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 runs")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    rows: dict[str, list[tuple[float, float]]] = {"first run": [], "second run": []}
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template"
        subprocess.run([LOOPML, "init", str(template)], check=True, capture_output=True)
        for i in range(runs):
            project = Path(tmp) / f"run{i}"
            shutil.copytree(template, project)
            for kind in rows:
                loopml_s, process_s, t = loopml_run(project)
                rows[kind].append((loopml_s, process_s))
                steps = " ".join(f"{k} {v:.2f}" for k, v in t.items())
                print(
                    f"{kind} {i + 1}: loopml {loopml_s:.2f} s, process {process_s:.2f} s  ({steps})"
                )
            shutil.rmtree(project)
    for kind, got in rows.items():
        ours, whole = [r[0] for r in got], [r[1] for r in got]
        print(
            f"{kind}: loopml overhead min {min(ours):.2f} s, median {statistics.median(ours):.2f} s "
            f"(goal <= {GOAL:.0f} s); process minus user code min {min(whole):.2f} s, "
            f"median {statistics.median(whole):.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
