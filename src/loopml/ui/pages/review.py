"""Page 6, Review queue: the predictions the model was least sure of that have no label yet,
for a person with the labeller role to label (the browser posts to ``POST /v1/labels``), and
the training rows the label lint flagged (fixed in the source data, not here). Each row shows
its explanation (the attributions that moved its score most), so a labeller sees why the
model hesitated.

Sureness is the largest class probability: ``max(_proba)`` when the log has the probability
vector, else ``max(s, 1 - s)`` for a binary score ``s``. The log is read with the serving
layer's reader (Parquet partitions plus open segments), so a prediction made a moment ago is
already in the queue.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.config import Config
from loopml.errors import NotFoundError
from loopml.jsonsafe import jsonable
from loopml.logs.layout import HOUR, PREDICTIONS, LogLocation, hour_start, log_location
from loopml.logs.logfiles import LogFiles
from loopml.logs.logreader import read_labels, read_log
from loopml.store import Store
from loopml.ui.explanations import review_explanations


def sureness(table: pa.Table) -> np.ndarray:
    """The largest class probability per row (NaN when the row has neither)."""
    n = table.num_rows
    out = np.full(n, np.nan)
    if "_proba" in table.column_names:
        col = table.column("_proba").combine_chunks()
        if col.null_count < n:
            lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
            flat = pc.fill_null(pc.cast(pc.list_flatten(col), pa.float64()), np.nan).to_numpy(
                zero_copy_only=False
            )
            has = lengths > 0
            if has.any():
                starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[has]
                out[has] = np.fmax.reduceat(flat, starts)
    if "_score" in table.column_names:
        s = pc.fill_null(pc.cast(table.column("_score"), pa.float64()), np.nan).to_numpy(
            zero_copy_only=False
        )
        gap = np.isnan(out)
        out[gap] = np.maximum(s[gap], 1.0 - s[gap])
    return out


def least_sure(log: pa.Table, labelled: set[Any], limit: int) -> tuple[pa.Table, np.ndarray]:
    """Served rows without a label, least sure first (at most ``limit``)."""
    if log.num_rows == 0:
        return log, np.array([])
    served = pc.not_equal(log.column("_role"), "shadow")
    log = log.filter(served)
    if labelled:
        known = pa.array(sorted(labelled), pa.string())
        log = log.filter(pc.invert(pc.is_in(log.column("_request_id"), value_set=known)))
    sure = sureness(log)
    keep = ~np.isnan(sure)
    order = np.flatnonzero(keep)[np.argsort(sure[keep], kind="stable")][:limit]
    return log.take(pa.array(order, pa.int64())), sure[order]


def newest_hour(root: LogLocation | str, endpoint: str) -> float | None:
    hours = LogFiles(root).hours(PREDICTIONS, endpoint)
    return hour_start(max(hours)) + HOUR if hours else None


def review(
    store: Store,
    cfg: Config,
    *,
    endpoint: str | None = None,
    days: float = 7.0,
    limit: int = 50,
    since: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Context of ``/review``: the least-sure unlabelled predictions of ``endpoint`` made after
    ``since``, else over the last ``days`` of the log (a log that stopped earlier is read up to
    its newest hour)."""
    names = sorted({r["name"] for r in store.endpoints.list()} | set(store.monitoring.endpoints()))
    endpoint = endpoint or (names[0] if names else None)
    if endpoint is not None and names and endpoint not in names:
        raise NotFoundError(
            f"No endpoint {endpoint!r}; endpoints: {', '.join(names)}.", field="endpoint"
        )
    ctx: dict[str, Any] = {
        "page": "review",
        "title": "Review queue",
        "endpoints": names,
        "endpoint": endpoint,
        "days": days,
        "limit": limit,
        "items": [],
        "classes": [],
        "suspects": [],
        "period": None,
        "since": since,
    }
    if endpoint is None:
        return ctx
    root = log_location(cfg)
    now = time.time() if now is None else now
    last = newest_hour(root, endpoint)
    end = now if last is None or last >= now - days * 86400 else last
    start = end - days * 86400 if since is None else since
    log = read_log(root, endpoint, datetime.fromtimestamp(start, UTC))
    labels = read_labels(root, endpoint, datetime.fromtimestamp(start, UTC))
    labelled = set(labels.column("_request_id").to_pylist()) if labels.num_rows else set()
    rows, sure = least_sure(log, labelled, limit)
    features = [c for c in rows.column_names if not c.startswith("_")]
    data = (
        rows.select(
            ["_request_id", "_ts", "_version", "_role", "_prediction", *features]
        ).to_pylist()
        if rows.num_rows
        else []
    )
    ctx["items"] = [
        {
            "request_id": r["_request_id"],
            "ts": r["_ts"].timestamp(),
            "version": r["_version"],
            "role": r["_role"],
            "prediction": r["_prediction"],
            "sureness": float(s),
            "features": {f: r[f] for f in features},
        }
        for r, s in zip(data, sure, strict=True)
    ]
    ctx["features"] = features
    ctx["explain_note"] = review_explanations(store, cfg, ctx["items"]) if ctx["items"] else None
    ctx["period"] = {
        "since": start,
        "until": end,
        "predictions": log.num_rows,
        "labelled": len(labelled),
    }
    try:
        ep = store.endpoints.get(endpoint)
    except NotFoundError:
        ep = None
    if ep and ep["champion_id"] is not None:
        champion = store.versions.get(ep["champion_id"])
        ctx["classes"] = (champion.get("signature") or {}).get("classes") or []
        gate = next((g for g in champion.get("gates") or [] if g.get("gate") == "labels"), None)
        if gate is not None:
            from loopml.evaluate.gating.label_lint import quarantine_rows

            ctx["suspects"] = quarantine_rows(gate)[:100]
            ctx["suspects_version"] = champion["id"]
    return jsonable(ctx)
