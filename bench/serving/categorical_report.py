"""The categorical case's table: one run as measured, or several as median (min-max).

Every ratio is taken within a run (loopml and the other server measured minutes apart on
the same box) and only then summarised, so a busy minute moves both sides of a ratio.
"""

from __future__ import annotations

from statistics import median

from categorical_apps import CASE_FLOOR, ONE_FLOOR, SOLO

Results = dict[tuple[str, int], dict]

# (server, against, goal, format, goal as written): issue 13's goals for the configured case,
# then the champion-only endpoint against the floor that serves one model, like for like.
GOALS = (
    ("loopml", ONE_FLOOR, 0.8, "{:.0%}", "80%"),
    ("loopml", CASE_FLOOR, 0.8, "{:.0%}", "80%"),
    ("loopml", "mlflow (dataframe_split)", 20, "{:.1f}x", "20x"),
    ("loopml", "mlserver", 10, "{:.1f}x", "10x"),
    (SOLO, ONE_FLOOR, 0.8, "{:.0%}", "80%"),
)


def spread(values: list[float], fmt: str) -> str:
    """``median`` alone for one value, else ``median (min-max)``."""
    if len(values) == 1:
        return fmt.format(values[0])
    lo, mid, hi = min(values), median(values), max(values)
    return f"{fmt.format(mid)} ({fmt.format(lo)}-{fmt.format(hi)})"


def ratios(runs: list[Results], other: str, conns: int, mine: str = "loopml") -> list[float]:
    """``mine``'s req/s over ``other``'s, per run that measured both."""
    out = []
    for r in runs:
        lm, o = r.get((mine, conns)), r.get((other, conns))
        if lm and o and o["rps"]:
            out.append(lm["rps"] / o["rps"])
    return out


def report(runs: list[Results], seconds: int) -> None:
    print(f"\n{seconds} s per level; servers on core 0, wrk on core 1 (req/s counts 2xx only)")
    print("CPU per request: server process tree; model = calibrated predict_proba cost * calls;")
    print("platform = CPU - model; load = 1-minute load average after each level\n")
    print(
        "| server | conc | req/s | p50 ms | p99 ms | errors | CPU ms/req | model ms/req "
        "| platform ms/req | model calls/req | load | loopml / this |"
    )
    print("|---" * 12 + "|")
    for name, conns in runs[0]:
        rs = [r[name, conns] for r in runs if (name, conns) in r]

        def col(key: str, fmt: str, rs: list[dict] = rs) -> str:
            return spread([r[key] for r in rs], fmt)

        platform = spread([r["cpu_ms"] - r["model_ms"] for r in rs], "{:.2f}")
        x = ratios(runs, name, conns)
        print(
            f"| {name} | {conns} | {col('rps', '{:.0f}')} | {col('p50', '{:.1f}')} | "
            f"{col('p99', '{:.1f}')} | {sum(r['errors'] for r in rs)} | "
            f"{col('cpu_ms', '{:.2f}')} | {col('model_ms', '{:.2f}')} | {platform} | "
            f"{col('calls_per_req', '{:.3f}')} | {col('load', '{:.1f}')} | "
            f"{spread(x, '{:.2f}x') if x else '-'} |"
        )
    for conns in (16, 64):
        for mine in dict.fromkeys(g[0] for g in GOALS):
            parts = []
            for who, other, goal, fmt, label in GOALS:
                x = ratios(runs, other, conns, mine) if who == mine else []
                if x:
                    met = "met" if median(x) >= goal else "NOT met"
                    parts.append(f"vs {other} {spread(x, fmt)} (goal >= {label}: {met})")
            if parts:
                print(f"c{conns}: {mine} " + "; ".join(parts))
