"""``make bench``: every benchmark against its anchors, in one run, printing ratios.

Each suite lives in its own folder (serving, monitoring, fairness, training, explain) and can run
alone; this runs them in sequence and passes ``--quick`` through (``make bench
BENCH_ARGS=--quick``).
The anchors (MLflow, MLServer, Evidently, whylogs, fairlearn) are installed by each suite in
its own virtualenv under bench/.venvs/, never into loopml's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
SUITES = ("explain", "fairness", "monitoring", "serving", "training")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller sizes and shorter loads")
    p.add_argument("--only", choices=SUITES, action="append", help="run only these suites")
    args = p.parse_args()
    failed = []
    for suite in args.only or SUITES:
        script = HERE / suite / "run.py"
        cmd = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
        print(f"\n=== bench/{suite} ===", flush=True)
        t = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"=== bench/{suite}: exit {rc} in {time.perf_counter() - t:.0f} s ===", flush=True)
        if rc != 0:
            failed.append(suite)
    if failed:
        print(f"failed suites: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
