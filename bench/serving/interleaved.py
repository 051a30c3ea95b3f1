"""Interleaved A/B on the categorical case: several servers up at once, measured in turns.

``categorical.py`` measures one server after another, so a change of a few percent drowns in
the machine's own drift (on the 2-vCPU VMs of this project the same loopml commit measured
1,773 and 2,577 req/s at c64 an hour apart). Here every server of the plan is started first,
then each is measured in short slices, in turn, round after round: whatever the machine does
during a round, every server meets it. The servers are the categorical case's (``loopml``,
``loopml (champion only)`` and the two batching floors), and loopml can run from several
source trees (``--tree``: a ``src`` folder, e.g. of a ``git worktree``) to compare commits.

    .venv/bin/python bench/serving/interleaved.py --tree src --tree ../wt/x/src --rounds 6
    .venv/bin/python bench/serving/interleaved.py --floors case,one --servers loopml

Idle servers stay up between their slices: a loopml server may compact its log in another
slice's time (its worker is in its session, so the CPU is counted where it belongs, but it
slows the server being measured on the shared core); a slice whose CPU per request stands
out is worth reading as such. CPU per request is the steadier figure: the closed loop's
req/s also depends on how batches and connections fall into step. With a floor in the plan,
each loopml server's req/s is also given as a share of its like-for-like floor's, round by
round.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parent))  # bench/, for harness

import categorical as cat  # noqa: E402
import harness  # noqa: E402
from categorical_apps import CASE_FLOOR, ONE_FLOOR, SOLO  # noqa: E402

FLOORS = {"case": CASE_FLOOR, "one": ONE_FLOOR}
# like for like: the configured case against the floor with the same canary and shadow, the
# champion-only endpoint against the one-model floor
LIKE = {"loopml": CASE_FLOOR, SOLO: ONE_FLOOR}


def plan(servers: dict[str, dict], trees: list[str], names: list[str], floors: list[str]):
    """The servers to start, by label: each loopml server once per source tree."""
    out: dict[str, dict] = {}
    for tree in trees:
        for name in names:
            spec = copy.deepcopy(servers[name])
            path = str(Path(tree).resolve())
            spec["env"] = {**spec["env"], "PYTHONPATH": path}
            out[name if len(trees) == 1 else f"{name} @ {tree}"] = spec
    for f in floors:
        out[FLOORS[f]] = servers[FLOORS[f]]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tree", action="append", help="loopml's source folder (repeatable)")
    p.add_argument("--servers", default="loopml", help="comma-separated loopml servers")
    p.add_argument("--floors", default="case", help="comma-separated: case, one (or empty)")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=int, default=8, help="measured seconds per slice")
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--work", default=str(harness.REPO / "bench" / ".work" / "serving_categorical"))
    args = p.parse_args(argv)
    trees = args.tree or [str(harness.REPO / "src")]
    names = [n for n in args.servers.split(",") if n]
    floors = [f for f in args.floors.split(",") if f]
    work = Path(args.work)
    servers = cat.setup(work, {"mlflow", "mlserver"}, 1e6)
    cost = cat.calibrate(work)
    specs = plan(servers, trees, names, floors)
    got: dict[str, list[dict]] = {k: [] for k in specs}
    with contextlib.ExitStack() as stack:
        bases = {k: stack.enter_context(harness.running(s)) for k, s in specs.items()}
        for r in range(args.rounds):
            for label, spec in specs.items():
                res = cat.level(spec, bases[label], args.conns, args.seconds, work, cost)
                got[label].append(res)
                print(
                    f"round {r + 1}  {label:50s} {res['rps']:6.0f} req/s  "
                    f"CPU/req {res['cpu_ms']:.3f} ms (model {res['model_ms']:.3f}, "
                    f"{res['calls_per_req']:.3f} calls/req)  errors {res['errors']}",
                    flush=True,
                )
    print(f"\nc{args.conns}, {args.rounds} rounds of {args.seconds} s: median (min-max)")
    print("| server | req/s | CPU ms/req | platform ms/req |\n|---|---|---|---|")
    for label, runs in got.items():
        cols = []
        for key, fmt in (("rps", "{:.0f}"), ("cpu_ms", "{:.3f}"), ("platform", "{:.3f}")):
            values = [x["cpu_ms"] - x["model_ms"] if key == "platform" else x[key] for x in runs]
            lo, mid, hi = (
                fmt.format(v) for v in (min(values), statistics.median(values), max(values))
            )
            cols.append(f"{mid} ({lo}-{hi})")
        print(f"| {label} | " + " | ".join(cols) + " |")
    for label in got:
        floor = LIKE.get(label.split(" @ ")[0])
        if floor in got:
            print(ratios(label, floor, got))
    return 0


def ratios(label: str, floor: str, got: dict[str, list[dict]]) -> str:
    """``label``'s req/s over ``floor``'s, round by round: the two were measured minutes
    apart at most, so the machine's drift mostly cancels (the goal is >= 80% of the floor)."""
    rs = [a["rps"] / b["rps"] for a, b in zip(got[label], got[floor], strict=True)]
    each = " ".join(f"{r:.0%}" for r in rs)
    met = sum(r >= 0.8 for r in rs)
    return (
        f"{label} / {floor}, round by round: {each}; median {statistics.median(rs):.0%}, "
        f">= 80% in {met} of {len(rs)}"
    )


if __name__ == "__main__":
    sys.exit(main())
