"""The endpoint's self-contained HTML report (``loopml report --endpoint``): one file with its
CSS, chart script and data inlined, readable offline and attachable to a ticket.

:func:`write_endpoint_report` shows an endpoint over a period: traffic, latency, errors, live
and estimated accuracy, drift and fairness charts with alert markers; a period summary; drift
by feature (how often each feature drifted in the period's newest windows); the most drifted
window's per-feature table and histograms; data-quality findings grouped by check; the
newest window's performance per slice and fairness groups; the alerts. It renders the
dashboard's own context builders and templates, so it shows the same numbers as the pages.
A version's report (``loopml report VERSION``) is the model card with its gates,
:func:`loopml.evaluate.documents.version_report.render`.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from loopml.config import Config
from loopml.errors import UsageError
from loopml.jsonsafe import jsonable
from loopml.monitor.queries import timeseries, window_detail
from loopml.store import Store
from loopml.store.rows import WindowRow
from loopml.ui import pages
from loopml.ui.app import environment
from loopml.ui.pages.page_helpers import parse_time
from loopml.ui.pages.window import drift_table

STATIC = Path(__file__).parent / "static"
MAX_DETAIL_WINDOWS = 168  # newest windows whose per-feature detail is read (a week of hours)


def _time(value: Any, field: str) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    return parse_time(value, field)


def _inline() -> dict[str, str]:
    css = (STATIC / "style.css").read_text(encoding="utf-8")
    js = (STATIC / "chart.js").read_text(encoding="utf-8")
    return {"css": css, "js": js.replace("</", "<\\/")}  # no "</script>" inside the script


def _summary(ts: dict[str, Any]) -> dict[str, Any]:
    def vals(name: str) -> list[float]:
        return [v for v in ts[name] if v is not None]

    acc, est, fair = vals("accuracy"), vals("estimated_accuracy"), vals("fairness_ratio")
    drift, p99 = vals("drift_score"), vals("latency_p99")
    labels = sum(ts["labels"])
    weighted = [
        (a, n) for a, n in zip(ts["accuracy"], ts["labels"], strict=True) if a is not None and n
    ]
    return {
        "windows": ts["n"],
        "rows": sum(ts["rows"]),
        "labels": labels,
        "accuracy": (sum(a * n for a, n in weighted) / sum(n for _, n in weighted))
        if weighted
        else None,
        "accuracy_min": min(acc) if acc else None,
        "estimated_accuracy_min": min(est) if est else None,
        "fairness_ratio_min": min(fair) if fair else None,
        "drift_score_max": max(drift) if drift else None,
        "drifted_windows": sum(1 for v in drift if v is not None and v > 0),
        "quality_errors": sum(ts["quality_errors"]),
        "errors": sum(ts["errors"]),
        "latency_p99_max": max(p99) if p99 else None,
    }


def _feature_drift(
    details: list[WindowRow],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per feature: windows drifted, largest effect; quality findings grouped by check."""
    seen: Counter[str] = Counter()
    drifted: Counter[str] = Counter()
    top: dict[str, float] = {}
    quality: dict[tuple[str, str, str], dict[str, Any]] = {}
    for d in details:
        rows, _ = drift_table((d["results"] or {}).get("drift"))
        for r in rows:
            seen[r["column"]] += 1
            drifted[r["column"]] += r["drifted"]
            if r["effect"] is not None:
                top[r["column"]] = max(top.get(r["column"], 0.0), r["effect"])
        for f in (d["results"] or {}).get("quality", []):
            key = (f["check"], f.get("column") or "", f["severity"])
            q = quality.setdefault(
                key,
                {
                    "check": key[0],
                    "column": key[1],
                    "severity": key[2],
                    "windows": 0,
                    "example": f["message"],
                    "evidence": f.get("evidence"),
                    "window_id": d["id"],
                },
            )
            q["windows"] += 1
    feats: list[dict[str, Any]] = [
        {"column": c, "windows": n, "drifted": drifted[c], "max_effect": top.get(c)}
        for c, n in seen.items()
    ]
    feats.sort(key=lambda r: (-r["drifted"], -(r["max_effect"] or 0.0)))
    return feats, sorted(quality.values(), key=lambda q: (q["severity"] != "error", -q["windows"]))


def endpoint_report(
    store: Store, cfg: Config, endpoint: str, since: Any = None, until: Any = None
) -> dict[str, Any]:
    """The report's context (what the HTML shows)."""
    t0, t1 = _time(since, "since"), _time(until, "until")
    if t0 is not None and t1 is not None and t1 <= t0:
        raise UsageError("--until must be after --since.", field="until")
    ctx = pages.endpoint(store, cfg, endpoint, since=t0, until=t1, days=None)
    ts = timeseries(store, endpoint, role="champion", since=t0, until=t1)
    ids = ts["id"][-MAX_DETAIL_WINDOWS:]
    details = [window_detail(store, i) for i in ids]
    feats, quality = _feature_drift(details)
    worst = None
    if ts["n"]:
        scores = [
            (s if s is not None else -1.0, i)
            for s, i in zip(ts["drift_score"], ts["id"], strict=True)
        ]
        worst = pages.window(store, cfg, max(scores)[1])
    latest = pages.window(store, cfg, ts["id"][-1]) if ts["n"] else None
    ctx.update(
        page="report",
        title=f"Endpoint {endpoint}: monitoring report",
        generated_at=time.time(),
        summary_period=_summary(ts),
        feature_drift=feats,
        detail_windows=len(details),
        quality_summary=quality,
        worst=worst,
        latest=latest,
    )
    return jsonable(ctx)


def _write(out_path: str | Path, html: str) -> Path:
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    return out


def write_endpoint_report(
    cfg: Config, store: Store, endpoint: str, since: Any, until: Any, out_path: str | Path
) -> Path:
    """Write the endpoint's report for [since, until) (UNIX seconds, ISO text, datetime or
    None for open) to ``out_path``; returns the path."""
    ctx = endpoint_report(store, cfg, endpoint, since, until)
    html = (
        environment()
        .get_template("report.html")
        .render(ctx=ctx, who=None, path="", inline=_inline())
    )
    return _write(out_path, html)
