"""The per-unit figures docs/capacity.md scales to a billion predictions a day, measured here.

    python bench/engines/capacity_inputs.py [--postgres postgresql+psycopg://...]

CPU figures are ``time.process_time`` (this process's CPU), so they hold on a busy machine
where wall time does not. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

N_FEATURES = 20
ROWS = 262_144


def _cpu(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def log_bytes(decimals: int | None) -> dict[str, float]:
    """Parquet bytes per logged row (20 float features, a binary classifier's outputs)."""
    from loopml.engines.chunks import _dictionary
    from loopml.scoring.scorer import Job, log_table, request_ids
    from loopml.serve.inference.request_rows import Batch

    rng = np.random.default_rng(0)
    block = rng.normal(size=(N_FEATURES, ROWS))
    if decimals is not None:
        block = block.round(decimals)
    score = 1 / (1 + np.exp(-block[0]))
    job = Job(None, 1, "ep", "j", 1_700_000_000_000_000, "")  # type: ignore[arg-type]
    table = log_table(
        job,
        request_ids(ROWS, 1_700_000_000_000),
        Batch({f"f{j}": block[j] for j in range(N_FEATURES)}, ROWS),
        (score > 0.5).astype(int),
        np.stack([1 - score, score], axis=1),
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=65_536, use_dictionary=_dictionary(table))
    return {"bytes_per_row": len(buf.getvalue()) / ROWS, "arrow_bytes_per_row": table.nbytes / ROWS}


def wal_bytes() -> float:
    """Bytes of one online request's write-ahead record (one row, 20 features)."""
    from loopml.logs.predlog import PredictionLog

    log = PredictionLog("/nonexistent")  # encoding only: nothing is opened
    rng = np.random.default_rng(0)
    rec = log.encode_predictions(
        endpoint="ep",
        version=1,
        role="champion",
        request_ids=["0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b"],
        features={f"f{j}": [float(rng.normal())] for j in range(N_FEATURES)},
        predictions=np.array([1]),
        probabilities=np.array([[0.3, 0.7]]),
        latency_ms=1.2,
    )
    return float(len(rec))


def profiles() -> dict[str, float]:
    """Sizes of a reference and a window profile of 20 numeric columns, and merge cost."""
    from loopml.stats import DatasetProfile

    rng = np.random.default_rng(1)
    ref_table = pa.table({f"f{j}": rng.normal(size=100_000) for j in range(N_FEATURES)})
    ref = DatasetProfile.from_frame(ref_table)
    win_table = pa.table({f"f{j}": rng.normal(size=ROWS) for j in range(N_FEATURES)})
    a = DatasetProfile.from_frame(win_table, ref, threads=1)
    b = DatasetProfile.from_frame(win_table, ref, threads=1)
    profile_cpu = _cpu(lambda: DatasetProfile.from_frame(win_table, ref, threads=1), 3)
    merge_cpu = _cpu(lambda: a + b, 20)
    return {
        "reference_profile_bytes": len(ref.to_bytes()),
        "window_profile_bytes": len(a.to_bytes()),
        "merge_cpu_seconds": merge_cpu,
        "profile_rows_per_cpu_second": ROWS / profile_cpu,
        "window_profile_to_bytes_cpu_seconds": _cpu(lambda: a.to_bytes(), 5),
    }


def postgres_writes(url: str, n: int = 300) -> dict[str, float]:
    """Single-row write transactions per second from one client (a lease renewal: what a
    replica's controller and monitor write every few seconds), and the window saves a
    monitoring pass makes per (endpoint, version, role, window) are of the same kind."""
    from loopml.store import Store

    store = Store(url)
    t = time.perf_counter()
    for _ in range(n):
        store.locks.acquire("capacity-bench", "bench", ttl=60.0)
    wall = time.perf_counter() - t
    store.locks.release("capacity-bench", "bench")
    return {"write_transactions_per_second_one_client": n / wall}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--postgres", help="a Postgres URL (a scratch database: rows are written)")
    args = p.parse_args()
    out = {
        "log_random_float64": log_bytes(None),
        "log_two_decimals": log_bytes(2),
        "wal_record_bytes_one_row": wal_bytes(),
        "profiles": profiles(),
    }
    if args.postgres:
        out["postgres"] = postgres_writes(args.postgres)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
