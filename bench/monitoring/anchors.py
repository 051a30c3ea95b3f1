"""The anchors, run inside their own virtualenv (bench/.venvs/anchors), one tool per process.

    bench/.venvs/anchors/bin/python bench/monitoring/anchors.py {evidently|whylogs} REF CUR

Both frames are read into pandas before the timer starts (as in research/monitoring.md), then:
- evidently: ``Report([DataDriftPreset()]).run(cur, ref)`` with all defaults; a column counts as
  drifted when its ``ValueDrift`` score reaches the threshold in its metric id (0.1 by default);
- whylogs: ``why.log(ref)``, ``why.log(cur)`` and ``calculate_drift_scores(..., with_thresholds=True)``;
  a column counts as drifted when its category is ``DRIFT``.
Prints one JSON line: wall and CPU seconds of the timed part, peak RSS of the process, RSS after
loading, and the drifted columns. Telemetry of both tools is switched off.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench/, after this folder

from harness import Clock, peak_rss_mb, rss_mb

os.environ.setdefault("DO_NOT_TRACK", "1")  # evidently/telemetry.py
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "True")


def run_evidently(ref, cur) -> list[str]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()]).run(cur, ref)
    drifted = []
    for m in snapshot.dict()["metrics"]:
        cfg = m.get("config", {})
        if not str(cfg.get("type", "")).endswith("ValueDrift"):
            continue
        method, limit, value = (
            str(cfg.get("method", "")),
            float(cfg.get("threshold", 0.1)),
            m["value"],
        )
        is_p = "p_value" in method.lower() or "test" in method.lower()
        if (value < limit) if is_p else (value >= limit):
            drifted.append(str(cfg["column"]))
    return drifted


def run_whylogs(ref, cur) -> list[str]:
    import whylogs as why
    from whylogs.viz.drift.column_drift_algorithms import calculate_drift_scores

    ref_view = why.log(ref).view()
    cur_view = why.log(cur).view()
    scores = calculate_drift_scores(
        target_view=cur_view, reference_view=ref_view, with_thresholds=True
    )
    return [c for c, s in scores.items() if s and s.get("drift_category") == "DRIFT"]


def main() -> None:
    tool, ref_path, cur_path = sys.argv[1:4]
    import pandas as pd

    if tool == "evidently":  # imports before the timer, as for loopml
        import evidently.presets  # noqa: F401
    else:
        import whylogs.viz.drift.column_drift_algorithms  # noqa: F401

    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    loaded = rss_mb()
    with Clock() as clock:
        drifted = run_evidently(ref, cur) if tool == "evidently" else run_whylogs(ref, cur)
    print(
        json.dumps(
            {
                "wall_s": clock.wall,
                "cpu_s": clock.cpu,
                "peak_rss_mb": peak_rss_mb(),
                "rss_after_load_mb": loaded,
                "drifted": sorted(drifted),
            }
        )
    )


if __name__ == "__main__":
    main()
