"""`loopml run` overhead on the employment example (2015, 68,785 rows): the time loopml adds
beyond the user's training code, goal <= 3 s.

Each run is ``loopml run --json`` in a fresh copy of the project that ``loopml init`` writes
(so the store is created and migrated, as on a first run), then once more in the same copy
(an existing store with a parent version). Two ways to count what loopml adds:

* ``loopml``: the run's wall time minus the user's code timed inside the run (importing
  ``train.py`` plus calling ``train()``); this is what ``loopml run`` prints;
* ``vs script``: the whole command's wall time minus that of the anchor, a plain Python script
  doing what the user would do without loopml: start Python, read the same training rows with
  pandas, import ``train.py`` and call ``train()``. Each loopml run is paired with an anchor
  run right after it, so both see the same machine load; the table reports medians of the
  per-pair differences.

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


ANCHOR = """
import json, sys, time
import pandas as pd
frame = pd.read_parquet(sys.argv[1])
sys.path.insert(0, ".")
from train import train
y = frame.pop(sys.argv[2])
t = time.perf_counter()
train(frame, y, json.loads(sys.argv[3]), seed=int(sys.argv[4]))
print(json.dumps({"train": time.perf_counter() - t}))
"""


def anchor_inputs(project: Path) -> list[str]:
    """The anchor's arguments: the run's training rows (features + target) as a Parquet file,
    the target's name, the params and the seed, from the project's own config."""
    from loopml.config import load_config
    from loopml.data.sources import load_frame
    from loopml.train.inputs import feature_columns, infer_task
    from loopml.train.split import split

    cfg = load_config(project / "loopml.yaml")
    frame = load_frame(cfg.data.train, cfg.root)
    task = infer_task(cfg, frame[cfg.data.target])
    train_rows, _, _ = split(frame, cfg.data, task, cfg.model.seed)
    cols = [*feature_columns(cfg, frame), cfg.data.target]
    path = project.parent / "anchor_train.parquet"
    frame.iloc[train_rows][cols].reset_index(drop=True).to_parquet(path)
    return [str(path), cfg.data.target, json.dumps(cfg.model.params), str(cfg.model.seed)]


def anchor_run(project: Path, argv: list[str]) -> tuple[float, float]:
    """(whole wall time, train() time) of the plain script in ``project``."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", ANCHOR, *argv], cwd=project, capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - t
    if done.returncode != 0:
        sys.exit(f"anchor script failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, json.loads(done.stdout)["train"]


def loopml_run(project: Path) -> tuple[float, float, dict[str, float]]:
    """(printed overhead, whole wall time, the run's step timings)."""
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
    return timings["total"] - user, wall, timings


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
        argv = anchor_inputs(template)
        for i in range(runs):
            project = Path(tmp) / f"run{i}"
            shutil.copytree(template, project)
            for kind in rows:
                printed, wall, t = loopml_run(project)
                anchor_wall, anchor_train = anchor_run(project, argv)
                rows[kind].append((printed, wall - anchor_wall))
                steps = " ".join(f"{k} {v:.2f}" for k, v in t.items())
                print(
                    f"{kind} {i + 1}: printed {printed:.2f} s; loopml run {wall:.2f} s vs "
                    f"script {anchor_wall:.2f} s (train {t['train']:.2f} vs "
                    f"{anchor_train:.2f} s) = +{wall - anchor_wall:.2f} s  ({steps})"
                )
            shutil.rmtree(project)
    for kind, got in rows.items():
        printed_s, vs_script = [r[0] for r in got], [r[1] for r in got]
        print(
            f"{kind}: printed overhead median {statistics.median(printed_s):.2f} s "
            f"(min {min(printed_s):.2f}); loopml run minus the plain script: median "
            f"{statistics.median(vs_script):.2f} s (min {min(vs_script):.2f}); goal <= {GOAL:.0f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
