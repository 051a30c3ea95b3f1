"""Refused traffic per endpoint and window, and the alert rule ``on: refused`` (issue 13 item 4).

The server counts the requests it answers 4xx before any model runs (by reason, column and
status) and writes the counts to the log kind ``refused``, read here as files like the
predictions (the monitor never imports serve)::

    {root}/refused/endpoint=<e>/hour=<YYYYMMDDHH>/part-<segment>.parquet

with columns ``_ts, _endpoint, _version, _role, _reason, _column, _status, _requests,
_rows``; segments not compacted yet come from the pass's ``LiveLog``. Counts fall in windows
by log time (``_ts``, the first refusal of an aggregate), aligned as the monitor's windows
are; a closed window with refusals is stored in ``monitor_refused`` beside the rows the
endpoint answered in it (champion and canary), rewritten only when its digest changes.

Such traffic has no version and no prediction, so it never shows in ``monitor_windows``: an
upstream change that makes every request fail validation would leave the monitor silent. The
rule ``on: refused`` judges the share of refused rows, ``rows / (rows + served)``, against
``threshold`` (0.5 unless set) with the usual persistence (``k`` of ``m`` windows) on the
endpoint-wide subject ``endpoint:E``. A window where nothing was served and only requests
whose rows could not be counted were refused (bodies that are not JSON) has share 1.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loopml.config import AlertRule, Config
from loopml.logs.layout import PREDICTIONS, REFUSED
from loopml.logs.parts import Part
from loopml.monitor import changes
from loopml.monitor.alerts import _apply, persisted, rules_of
from loopml.monitor.webhooks import Delivery
from loopml.store import Store
from loopml.store.rows import RefusedWindow

if TYPE_CHECKING:
    from loopml.monitor.jobs import Pass

KIND = REFUSED
DEFAULT_SHARE = 0.5
SERVED_ROLES = ("champion", "canary")  # what clients were answered; shadows answer no one


def endpoints(p: Pass) -> list[str]:
    """Endpoints with refused-log partitions."""
    return sorted(
        n[len("endpoint=") :]
        for n in p.logs._ls(f"{p.logs.base}/{KIND}")
        if n.startswith("endpoint=")
    )


COLUMNS = ["_ts", "_reason", "_column", "_status", "_requests", "_rows"]


def _counts(p: Pass, parts: list[Part]) -> pa.Table | None:
    """The refusal counts of these parts (Parquet parts and live segments)."""
    tables = [
        q.table.select(COLUMNS)
        if q.table is not None
        else pq.read_table(q.path, columns=COLUMNS, filesystem=p.logs.arrow_fs)
        for q in parts
    ]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def _served(p: Pass, parts: list[Part], start: float, end: float) -> int:
    """Rows the endpoint answered (champion and canary) in [start, end), from the prediction
    parts (and live segments) that meet it."""
    parts = [q for q in parts if q.hi >= start and q.lo < end]
    n = 0
    for batch in p.logs.batches(parts, start, end, ["_role"]):
        n += pc.sum(pc.is_in(batch.column("_role"), pa.array(SERVED_ROLES))).as_py() or 0
    return int(n)


def share_of(rows: int, requests: int, served: int) -> float | None:
    """The refused share of a window's rows (see the module docstring)."""
    if rows + served:
        return rows / (rows + served)
    return 1.0 if requests else None


def refused_windows(p: Pass, endpoint: str, now: float) -> dict[str, Any]:
    """Store the endpoint's closed windows with refusals that are new or changed.

    Returns ``{"changed": [starts], "windows": [rows of the changed windows], "open": [counts
    of the windows still open]}``."""
    mon = p.cfg.monitor
    W = mon.window
    out: dict[str, Any] = {"changed": [], "windows": [], "open": []}
    parts, served = p.index(KIND, endpoint), p.index(PREDICTIONS, endpoint)
    windows = changes.windows_of(parts, W)
    closed = [s for s in windows if s + W + mon.grace <= now]
    # only the windows whose counts or served rows may have changed since the last pass
    memo = changes.memo_key(p.cfg, endpoint, KIND)
    before = changes.last(memo)
    look = set(windows)
    if before is not None:
        new = [q for q in parts + served if changes.key_of(q) not in before.parts]
        look -= set(closed) - set(changes.touched(before, closed, windows, W, new, []))
    table = _counts(p, list({id(q): q for s in look for q in windows[s]}.values()))
    if table is not None and table.num_rows:
        _store(p, endpoint, table, look, served, now, out)
    changes.remember(memo, [changes.key_of(q) for q in parts + served], closed)
    return out


def _store(
    p: Pass,
    endpoint: str,
    table: pa.Table,
    look: set[float],
    served_parts: list[Part],
    now: float,
    out: dict[str, Any],
) -> None:
    """Group the counts by window (those in ``look``), store the closed ones that changed and
    list the open ones in ``out``."""
    mon = p.cfg.monitor
    W = mon.window
    ts = pc.divide(table.column("_ts").cast(pa.int64()), 1_000_000)
    starts = [math.floor(t / W) * W for t in ts.to_pylist()]
    grouped = (
        table.drop(["_ts"])
        .append_column("start", pa.array(starts, pa.float64()))
        .group_by(["start", "_reason", "_column", "_status"])
        .aggregate([("_requests", "sum"), ("_rows", "sum")])
        .to_pylist()
    )
    by_window: dict[float, list[dict[str, Any]]] = {}
    for g in grouped:
        if float(g["start"]) not in look:  # a part's rows in a window that did not change
            continue
        by_window.setdefault(float(g["start"]), []).append(
            {
                "reason": g["_reason"],
                "column": g["_column"],
                "status": int(g["_status"]),
                "requests": int(g["_requests_sum"] or 0),
                "rows": int(g["_rows_sum"] or 0),
            }
        )
    known = p.store.refused.fingerprints(endpoint)
    for s, counts in sorted(by_window.items()):
        counts.sort(key=lambda c: (-c["rows"], -c["requests"], c["reason"], c["column"]))
        requests = sum(c["requests"] for c in counts)
        rows = sum(c["rows"] for c in counts)
        served = _served(p, served_parts, s, s + W)
        summary = {
            "endpoint": endpoint,
            "start": s,
            "end": s + W,
            "requests": requests,
            "rows": rows,
            "served": served,
            "share": share_of(rows, requests, served),
            "counts": counts,
        }
        if s + W + mon.grace > now:
            out["open"].append(summary)  # provisional: never stored nor judged
            continue
        digest = hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()
        if known.get(s) == digest:
            continue
        values = {k: v for k, v in summary.items() if k not in ("endpoint", "start")}
        wid = p.store.refused.save(endpoint=endpoint, start=s, log_files=digest, **values)
        out["changed"].append(s)
        out["windows"].append({"id": wid, **summary})


def judge(rule: AlertRule, row: RefusedWindow) -> tuple[bool | None, dict[str, Any]]:
    """Whether one refused window breaches ``rule`` (None: nothing to judge)."""
    thr = rule.threshold if rule.threshold is not None else DEFAULT_SHARE
    value = row["share"]
    ev = {
        "value": value,
        "threshold": thr,
        "op": ">=",
        "refused_requests": row["requests"],
        "refused_rows": row["rows"],
        "served_rows": row["served"],
        "top": row["counts"][:5],
    }
    return (None if value is None else value >= thr), ev


def evaluate(
    store: Store,
    cfg: Config,
    endpoint: str,
    starts: list[float],
    *,
    delivery: Delivery | None = None,
) -> list[dict[str, Any]]:
    """Apply the ``on: refused`` rules at each changed window, in time order; returns the
    alert events. Windows are referred to as ``refused:<id>`` (they are not monitor windows);
    the alert links to the version window at the same start when there is one."""
    rules = [r for r in rules_of(cfg) if r.on == "refused"]
    if not starts or not rules:
        return []
    series = store.refused.series(endpoint, until=max(starts) + 1e-6)
    position = {r["start"]: i for i, r in enumerate(series)}
    subject = f"endpoint:{endpoint}"
    events: list[dict[str, Any]] = []
    for rule in rules:
        verdicts = [judge(rule, r) for r in series]
        ids = [f"refused:{r['id']}" for r in series]
        for i, ev, hits in persisted(rule, verdicts, starts, position, ids):
            s = series[i]["start"]
            row = {**series[i], "id": ids[i]}
            ev["window"] = {"refused": series[i]["id"], "start": s, "end": series[i]["end"]}
            same = store.monitoring.series(endpoint, since=s, until=s + 1e-6)
            linked = next((w["id"] for w in same if w["role"] == "champion"), None)
            linked = linked if linked is not None or not same else same[0]["id"]
            event = _apply(
                store,
                cfg,
                rule,
                endpoint,
                subject,
                row,
                ev,
                hits >= rule.k,
                hits,
                delivery,
                window_id=linked,
            )
            if event:
                events.append(event)
    return events
