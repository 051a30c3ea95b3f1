"""Monitoring benchmark (issue 4): drift + quality of one current window against a stored reference.

Data as in research/monitoring.md: 80% float columns (normal and lognormal), 20% string
categoricals (20 Zipf-like levels), 1% NaN in n3 and n4. The current window has 4 real drifts:
n0 mean +0.25 sd, n1 sd x1.5, n2 mean +0.05 sd (subtle), c0 level probabilities reversed. Files
are written once and cached under bench/.data/ (git-ignored, like bench/.venvs/); a
10M-row window is compared with the 1M-row reference of the same width.

Every tool runs in a fresh process, so wall, CPU (user+sys) and peak RSS are its own:
- loopml reference: the training-time step (``DatasetProfile.from_parquet`` on the reference,
  stored as bytes); shown for information, not part of the window's cost;
- loopml: load the stored profile, infer the schema, stream the window's Parquet file in 64k-row
  batches against it, ``dataset_drift`` and ``check_quality``;
- floor: one DuckDB scan of the window (2 threads) computing the same per-column statistics
  (count, min, max, mean, std; value counts) and histograms on the reference's PSI edges;
- evidently, whylogs: in their own virtualenv (bench/.venvs/anchors, created on first use),
  frames loaded into pandas before their timer starts (``anchors.py``), with a timeout.

    .venv/bin/python bench/monitoring/run.py                     # 1Mx20 with anchors, 1Mx100, 10Mx20
    .venv/bin/python bench/monitoring/run.py --quick             # 100kx20 and 1Mx20
    .venv/bin/python bench/monitoring/run.py --sizes 1Mx100 --anchors whylogs --anchor-max-cells 1e8

Beside it: ``false_alarms.py`` (the default rule's no-drift false alarms per column by window
size) and ``multivariate.py`` (the monitor's domain classifier on a correlation that flips).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench/, after this folder

from harness import REPO, Clock, peak_rss_mb, venv

HERE = Path(__file__).resolve().parent
DATA = REPO / "bench" / ".data" / "monitoring"
ANCHOR_PACKAGES = ["evidently==0.7.23", "pandas<3", "whylogs[viz]==1.6.4", "pyarrow"]
LEVELS = np.array([f"level_{i}" for i in range(20)])
TRUE_DRIFTS = {"n0", "n1", "n2", "c0"}
CHUNK = 1_000_000
REFERENCE_ROWS = 1_000_000


# ---------------------------------------------------------------- data
def _table(n: int, c: int, rng: np.random.Generator, drift: bool) -> pa.Table:
    n_cat = c // 5
    p = 1 / np.arange(1, 21) ** 1.1
    p /= p.sum()
    cols: dict[str, object] = {}
    for j in range(c - n_cat):
        if j % 2 == 0:
            mean, sd = j % 7, 1 + j % 3
            v = rng.normal(mean, sd, n)
        else:
            v = rng.lognormal(0, 0.5, n)
            mean, sd = np.exp(0.125), np.sqrt((np.exp(0.25) - 1) * np.exp(0.25))
        if drift and j == 0:
            v += 0.25 * sd
        if drift and j == 1:
            v = mean + (v - mean) * 1.5
        if drift and j == 2:
            v += 0.05 * sd
        if j in (3, 4):
            v[rng.random(n) < 0.01] = np.nan
        cols[f"n{j}"] = v
    for j in range(n_cat):
        probs = p[::-1] if drift and j == 0 else p
        codes = np.minimum(np.searchsorted(np.cumsum(probs), rng.random(n)), 19)
        cols[f"c{j}"] = pa.array(LEVELS[codes])
    return pa.table(cols)


def _write(path: Path, n: int, c: int, drift: bool, seed: int) -> None:
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    first = _table(min(CHUNK, n), c, rng, drift)
    with pq.ParquetWriter(tmp, first.schema) as w:
        w.write_table(first, row_group_size=256_000)
        for start in range(CHUNK, n, CHUNK):
            w.write_table(_table(min(CHUNK, n - start), c, rng, drift), row_group_size=256_000)
    tmp.rename(path)


def make_data(n: int, c: int) -> tuple[Path, Path]:
    DATA.mkdir(parents=True, exist_ok=True)
    ref_rows = min(n, REFERENCE_ROWS)
    ref, cur = DATA / f"ref_{ref_rows}x{c}.parquet", DATA / f"cur_{n}x{c}.parquet"
    _write(ref, ref_rows, c, False, seed=1000 + c)
    _write(cur, n, c, True, seed=2000 + c + n % 997)
    return ref, cur


# ---------------------------------------------------------------- tools (children)
def tool_reference(ref: str, cur: str) -> dict:
    from loopml.stats import DatasetProfile

    with Clock() as clock:
        prof = DatasetProfile.from_parquet(ref)
        data = prof.to_bytes()
        Path(ref + ".profile").write_bytes(data)
    return {"wall_s": clock.wall, "cpu_s": clock.cpu, "profile_kb": len(data) / 1024}


def tool_loopml(ref: str, cur: str) -> dict:
    from loopml.stats import DatasetProfile, check_quality, dataset_drift, infer_schema

    stored = Path(ref + ".profile").read_bytes()  # what `loopml run` keeps with the version
    with Clock() as clock:
        reference = DatasetProfile.from_bytes(stored)
        schema = infer_schema(reference)
        window = DatasetProfile.from_parquet(cur, reference=reference)
        drift = dataset_drift(reference, window)
        findings = check_quality(schema, window)
    ks_flagged = sorted(
        c.column
        for c in drift.columns
        if c.p_value is not None and c.p_value < 0.05 and c.kind == "numeric"
    )
    return {
        "wall_s": clock.wall,
        "cpu_s": clock.cpu,
        "drifted": drift.drifted_columns,
        "findings": len(findings),
        "ks_p05": ks_flagged,
    }


def tool_floor(ref: str, cur: str) -> dict:
    import duckdb

    from loopml.stats import DatasetProfile
    from loopml.stats.column import NumericProfile

    reference = DatasetProfile.from_bytes(Path(ref + ".profile").read_bytes())
    exprs = []
    for name, prof in reference.columns.items():
        q = f'"{name}"'
        if isinstance(prof, NumericProfile) and prof.edges is not None:
            edges = ", ".join(f"{e!r}::DOUBLE" for e in prof.edges.tolist())
            exprs += [
                f"count({q})",
                f"min({q})",
                f"max({q})",
                f"avg({q})",
                f"stddev_pop({q})",
                f"histogram({q}, [{edges}])",
            ]
        else:
            exprs += [f"count({q})", f"histogram({q})"]
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    with Clock() as clock:
        con.execute(f"SELECT {', '.join(exprs)} FROM read_parquet('{cur}')").fetchall()
    return {"wall_s": clock.wall, "cpu_s": clock.cpu}


TOOLS = {"reference": tool_reference, "loopml": tool_loopml, "floor": tool_floor}


def _child(tool: str, ref: str, cur: str) -> None:
    res = TOOLS[tool](ref, cur)
    res["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(res), flush=True)


# ---------------------------------------------------------------- parent
def run(cmd: list[str], timeout: float) -> dict:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    if out.returncode != 0:
        return {
            "error": out.stderr.strip().splitlines()[-1]
            if out.stderr.strip()
            else f"exit {out.returncode}"
        }
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_size(text: str) -> tuple[int, int]:
    rows, cols = text.lower().split("x")
    scale = {"k": 1_000, "m": 1_000_000}.get(rows[-1], 1)
    return int(float(rows.rstrip("km")) * scale), int(cols)


def _label(n: int, c: int) -> str:
    return f"{n // 1_000_000}M x {c}" if n >= 1_000_000 else f"{n // 1000}k x {c}"


def _found(r: dict) -> str:
    if "drifted" not in r:
        return ""
    got = set(r["drifted"])
    return f"{len(got & TRUE_DRIFTS)}/{len(TRUE_DRIFTS)} true, {len(got - TRUE_DRIFTS)} false"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sizes", default="1Mx20,1Mx100,10Mx20", help="comma-separated NxC, e.g. 100kx20,1Mx100"
    )
    ap.add_argument("--quick", action="store_true", help="100kx20 and 1Mx20 only")
    ap.add_argument("--anchors", default="evidently,whylogs", help="anchors to run ('' for none)")
    ap.add_argument(
        "--anchor-max-cells",
        type=float,
        default=20e6,
        help="skip anchors on windows with more cells (Evidently took 157 s at 1Mx20)",
    )
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs of loopml and the floor (best kept)"
    )
    ap.add_argument("--child", nargs=3, metavar=("TOOL", "REF", "CUR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    sizes = ["100kx20", "1Mx20"] if args.quick else args.sizes.split(",")
    anchors = [a for a in args.anchors.split(",") if a]
    results = []
    header = (
        "| N x C | tool | wall s | CPU s | peak RSS MB | vs loopml (wall) | drift found | notes |\n"
        "|---|---|---:|---:|---:|---:|---|---|"
    )
    print(header, flush=True)
    for size in sizes:
        n, c = parse_size(size)
        ref, cur = make_data(n, c)
        rows: dict[str, dict] = {}
        me = [sys.executable, str(Path(__file__).resolve()), "--child"]
        rows["loopml reference (once)"] = run([*me, "reference", str(ref), str(cur)], args.timeout)
        for tool in ("loopml", "floor"):
            runs = [
                run([*me, tool, str(ref), str(cur)], args.timeout)
                for _ in range(max(args.repeat, 1))
            ]
            ok = [r for r in runs if "wall_s" in r]
            rows[tool] = min(ok, key=lambda r: r["wall_s"]) if ok else runs[0]
        for anchor in anchors:
            if n * c > args.anchor_max_cells:
                rows[anchor] = {"skipped": f"> {args.anchor_max_cells:.0e} cells"}
                continue
            py = venv("anchors", ANCHOR_PACKAGES)  # never in loopml's venv
            rows[anchor] = run(
                [str(py), str(HERE / "anchors.py"), anchor, str(ref), str(cur)], args.timeout
            )
        base = rows["loopml"].get("wall_s")
        for tool, r in rows.items():
            notes = []
            if "timeout" in r:
                wall = f">{r['timeout']:.0f}"
            elif "wall_s" in r:
                wall = f"{r['wall_s']:.2f}"
            else:
                wall = "-"
                notes.append(r.get("error") or r.get("skipped") or "")
            ratio = (
                f"{r['wall_s'] / base:.1f}x"
                if "wall_s" in r and base
                else (f">{r['timeout'] / base:.0f}x" if "timeout" in r and base else "")
            )
            if tool == "loopml" and "findings" in r:
                notes.append(
                    f"{r['findings']} quality findings; KS p<0.05 on numerics: "
                    f"{_found({'drifted': r['ks_p05']})}"
                )
            if "profile_kb" in r:
                notes.append(f"stored profile {r['profile_kb']:.0f} KB")
            if "rss_after_load_mb" in r:
                notes.append(f"RSS after pandas load {r['rss_after_load_mb']:.0f} MB")
            cpu = f"{r['cpu_s']:.2f}" if "cpu_s" in r else ""
            rss = f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else ""
            print(
                f"| {_label(n, c)} | {tool} | {wall} | {cpu} | {rss} | {ratio} | {_found(r)} | "
                f"{'; '.join(x for x in notes if x)} |",
                flush=True,
            )
        results.append({"size": size, "rows": rows})
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"monitoring-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"load": os.getloadavg(), "results": results}, indent=1))
    print(f"\nload average {os.getloadavg()[0]:.1f}; raw results in {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
