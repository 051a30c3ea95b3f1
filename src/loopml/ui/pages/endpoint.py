"""Page 2, Endpoint: traffic over time (which version served when), latency and errors, live
and estimated performance (the monitor's metric), dataset drift, fairness worst-case ratio; each a time-series chart
with the endpoint's alerts as markers. Numbers come from ``monitor.queries.timeseries``
(summary columns only), cut to chart size by :mod:`loopml.ui.series`."""

from __future__ import annotations

from typing import Any

import numpy as np

from loopml.config import Config
from loopml.errors import NotFoundError
from loopml.jsonsafe import jsonable
from loopml.monitor.queries import timeseries
from loopml.store import Store
from loopml.store.rows import AlertRow
from loopml.ui.pages.overview import endpoint_summary
from loopml.ui.pages.page_helpers import refused_summary
from loopml.ui.series import split_by

NUMBERS = (
    "performance",
    "estimated_performance",
    "drift_score",
    "prediction_drift",
    "fairness_ratio",
    "latency_p50",
    "latency_p99",
    "errors",
    "rows",
    "base_rate",
)
# alert rule kind (``on``) -> the chart its markers go on
MARKER_CHART = {
    "drift": "drift",
    "quality": "drift",
    "performance": "accuracy",
    "estimated_performance": "accuracy",
    "fairness": "fairness",
    "latency": "latency",
    "errors": "errors",
}
RECENT_WINDOWS = 48
# the default view: a month of hourly windows reads in ~1/12 of a year's time; longer periods
# are one click away (?days=365 or ?since=...)
DEFAULT_DAYS = 30.0


def _series(parts: dict[str, dict[str, Any]], number: str, label: str) -> list[dict[str, Any]]:
    return [
        {"name": f"{label} · {key}", "x": p["x"], "y": p[number], "bucket": p["bucket"]}
        for key, p in parts.items()
    ]


def metric_label(ts: dict[str, Any]) -> str:
    """The metric (or metrics) the windows track, for titles: 'accuracy', 'r2'."""
    names = sorted({m for m in ts.get("metric", ()) if m})
    return " / ".join(names) if names else "accuracy"


def charts(ts: dict[str, Any], alerts: list[AlertRow], cfg: Config) -> list[dict[str, Any]]:
    """The endpoint's chart specs (what ``static/chart.js`` draws)."""
    by_role = split_by(ts, "role", NUMBERS)
    served: dict[str, Any] = {"n": 0}
    if ts.get("n"):  # traffic = rows answered per version (champion and canary; not shadows)
        keep = np.isin(np.asarray(ts["role"]), ["champion", "canary"])
        served = {k: np.asarray(ts[k])[keep].tolist() for k in ("start", "version", "rows")}
        served["n"] = int(keep.sum())
    by_version = split_by(served, "version", ("rows",))
    specs: list[dict[str, Any]] = [
        {
            "id": "traffic",
            "title": "Rows served per window, by version",
            "unit": "rows",
            "series": [
                {
                    "name": f"version {v}",
                    "x": p["x"],
                    "y": p["rows"],
                    "bucket": p["bucket"],
                    "href": f"/versions/{v}",
                }
                for v, p in by_version.items()
            ],
        },
        {
            "id": "latency",
            "title": "Latency p50 and p99 (ms)",
            "unit": "ms",
            "series": _series(by_role, "latency_p50", "p50")
            + _series(by_role, "latency_p99", "p99"),
        },
        {
            "id": "errors",
            "title": "Errors per window",
            "unit": "errors",
            "series": _series(by_role, "errors", "errors"),
        },
        {
            # the monitor's metric (accuracy for a classifier, r2 for a regression)
            "id": "accuracy",
            "title": f"{metric_label(ts)}: live (labelled) and estimated (before labels)",
            "unit": "",
            "series": _series(by_role, "performance", "live")
            + _series(by_role, "estimated_performance", "estimated"),
        },
        {
            # label drift (issue 11 item 7): a base-rate shift no retrain can fix; windows
            # with too few labelled rows have none and are not plotted
            "id": "labels",
            "title": "Labels: base rate of the labelled rows",
            "unit": "",
            "series": _series(by_role, "base_rate", "base rate"),
        },
        {
            "id": "drift",
            "title": "Dataset drift: share of drifted features",
            "unit": "",
            "series": _series(by_role, "drift_score", "drift share"),
            "threshold": cfg.monitor.drift_share,
        },
        {
            "id": "fairness",
            "title": "Fairness: worst-case selection-rate ratio",
            "unit": "",
            "series": _series(by_role, "fairness_ratio", "ratio"),
            "threshold": cfg.monitor.fairness_threshold,
        },
    ]
    for spec in specs:
        for line in spec["series"]:  # consecutive windows are this far apart; more is a gap
            line["step"] = cfg.monitor.window * line["bucket"]
        spec["markers"] = [
            {
                "x": a["first_seen"],
                "label": f"{a['rule']} ({a['severity']}, {a['status']}): {a['message']}",
                "severity": a["severity"],
                "status": a["status"],
                "href": f"/windows/{a['window_id']}" if a.get("window_id") else None,
            }
            for a in alerts
            if MARKER_CHART.get(a["on"]) == spec["id"]
        ]
    return specs


def endpoint(
    store: Store,
    cfg: Config,
    name: str,
    *,
    since: float | None = None,
    until: float | None = None,
    days: float | None = DEFAULT_DAYS,
) -> dict[str, Any]:
    """Context of ``/endpoints/{name}``: windows in [since, until); with neither, the last
    ``days`` before the newest window (``days=None``: every window)."""
    try:
        row = store.endpoints.get(name)
    except NotFoundError:
        if name not in store.monitoring.endpoints():
            raise
        row = None
    if since is None and until is None and days is not None:
        newest = store.monitoring.series(name, limit=1)
        since = newest[-1]["end"] - days * 86400 if newest else None
    ts = timeseries(store, name, since=since, until=until)
    alerts = store.monitoring.alerts(endpoint=name, limit=500)
    if since is not None or until is not None:
        alerts = [
            a
            for a in alerts
            if (since is None or a["last_seen"] >= since)
            and (until is None or a["first_seen"] < until)
        ]
    n = ts["n"]
    recent = [
        {
            "id": ts["id"][i],
            "start": ts["start"][i],
            "version": ts["version"][i],
            "role": ts["role"][i],
            "rows": ts["rows"][i],
            "labels": ts["labels"][i],
            "metric": ts["metric"][i],
            "performance": ts["performance"][i],
            "estimated_performance": ts["estimated_performance"][i],
            "accuracy": ts["accuracy"][i],
            "estimated_accuracy": ts["estimated_accuracy"][i],
            "drift_score": ts["drift_score"][i],
            "quality_errors": ts["quality_errors"][i],
            "fairness_ratio": ts["fairness_ratio"][i],
            "latency_p99": ts["latency_p99"][i],
            "href": f"/windows/{ts['id'][i]}",
        }
        for i in range(n - 1, max(-1, n - 1 - RECENT_WINDOWS), -1)
    ]
    open_alerts = [a for a in alerts if a["status"] == "open"]
    return jsonable(
        {
            "page": "endpoint",
            "title": f"Endpoint {name}",
            "name": name,
            "summary": endpoint_summary(store, cfg, name, row, open_alerts),
            "period": {
                "since": since,
                "until": until,
                "days": days,
                "windows": n,
                "first": ts["start"][0] if n else None,
                "last": ts["end"][-1] if n else None,
            },
            "charts": charts(ts, alerts, cfg),
            "history": [{"at": h["at"], **h["traffic"]} for h in store.endpoints.history(name)][
                ::-1
            ],
            "alerts": [
                {
                    k: a[k]
                    for k in (
                        "id",
                        "rule",
                        "on",
                        "severity",
                        "status",
                        "subject",
                        "message",
                        "first_seen",
                        "last_seen",
                        "count",
                        "window_id",
                    )
                }
                # why a resolved alert resolved (condition cleared, subject left traffic)
                | {"resolution": (a.get("evidence") or {}).get("resolution")}
                for a in alerts
            ],
            "windows": recent,
            "refused": [
                refused_summary(r)
                for r in store.refused.series(name, since=since, until=until, limit=RECENT_WINDOWS)
            ][::-1],
            "rollouts": store.rollouts.list(endpoint=name, limit=20),
        }
    )
