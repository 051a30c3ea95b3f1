"""The monitoring pass: every closed window of every endpoint, computed once, then alerts.

Windows are aligned on multiples of ``monitor.window`` (UTC epoch) by prediction time and are
closed ``monitor.grace`` after their end. A window's row records fingerprints of the Parquet
parts it was computed from: a rerun skips a window whose parts are unchanged (idempotent),
recomputes only the label-dependent part (performance, estimates, fairness, label drift) when
new label parts arrived within ``monitor.labels_within`` of it, and recomputes it whole only
if new prediction parts appeared in its hours (late compaction). ``run_monitor`` is what
``loopml monitor`` runs once (cron) and ``loopml serve`` runs every ``monitor.schedule``.
"""

from __future__ import annotations

import math
import os
import socket
import time
import uuid
from typing import Any

from loopml.artifacts.store import ArtifactStore
from loopml.config import Config
from loopml.engines import Engine
from loopml.errors import NotFoundError
from loopml.monitor import alerts as alert_rules
from loopml.monitor.blocks import scan_blocks
from loopml.monitor.logfiles import HOUR, LogFiles, hour_name, hour_start, id_floor, is_uuid7
from loopml.monitor.reference import Reference, load_reference
from loopml.monitor.webhooks import Delivery
from loopml.monitor.windows import full_part, performance_part, scan, window_profile
from loopml.progress import NullSteps, Steps
from loopml.store import Store

LOCK = "monitor"


class Pass:
    """State shared by one monitoring pass: readers and the references it loaded."""

    def __init__(self, cfg: Config, store: Store, engine: Engine | None = None) -> None:
        self.cfg, self.store = cfg, store
        self.engine = engine  # None: scan in this process
        self.artifacts = ArtifactStore(cfg.artifacts_root)
        self.logs = LogFiles(cfg.artifacts_root)
        self.refs: dict[int, Reference | None] = {}

    def ref_of(self, version_id: int) -> Reference | None:
        if version_id not in self.refs:
            try:
                version = self.store.versions.get(version_id)
            except NotFoundError:
                self.refs[version_id] = None
            else:
                self.refs[version_id] = load_reference(
                    self.artifacts, version, positive_class=self.cfg.data.positive_class
                )
        return self.refs[version_id]


def window_starts(hours: list[str], window: float) -> list[float]:
    """Starts of the windows that overlap the given hour partitions."""
    starts: set[float] = set()
    for h in hours:
        t0 = hour_start(h)
        s = math.floor(t0 / window) * window
        while s < t0 + HOUR:
            starts.add(float(s))
            s += window
    return sorted(starts)


def _hours_between(start: float, end: float) -> list[str]:
    first = math.floor(start / HOUR) * HOUR
    return [hour_name(t) for t in range(int(first), math.ceil(end), HOUR)]


def monitor_endpoint(p: Pass, endpoint: str, now: float) -> dict[str, Any]:
    """Compute the endpoint's closed windows that are new or whose inputs changed."""
    mon = p.cfg.monitor
    W = mon.window
    logs, store = p.logs, p.store
    label_hours = logs.hours("labels", endpoint)
    closed = [
        s for s in window_starts(logs.hours("predlog", endpoint), W) if s + W + mon.grace <= now
    ]
    known = store.monitoring.fingerprints(endpoint, since=closed[0] if closed else None)
    out: dict[str, Any] = {"computed": 0, "relabelled": 0, "unchanged": 0, "changed": {}}
    for s in closed:
        e = s + W
        parts = logs.parts("predlog", endpoint, _hours_between(s, e))
        parts = logs.overlapping(parts, "_ts", s, e)
        if not parts:
            continue
        fp_log = logs.fingerprint(parts)
        horizon = min(e + mon.labels_within, now)
        lab_parts = logs.parts(
            "labels",
            endpoint,
            [h for h in label_hours if hour_start(h) + HOUR > s and hour_start(h) < horizon],
        )
        lab_parts = logs.overlapping(
            lab_parts, "_request_id", id_floor(s), id_floor(e), only_if=is_uuid7
        )
        fp_lab = logs.fingerprint(lab_parts)
        have = known.get(s, {})
        same_log = bool(have) and all(x["log_files"] == fp_log for x in have.values())
        if same_log and all(x["label_files"] == fp_lab for x in have.values()):
            out["unchanged"] += 1
            continue
        labels = logs.labels([path for path, _ in lab_parts]) if lab_parts else None
        paths = [path for path, _ in parts]
        if p.engine is None or p.engine.name == "local":
            groups = scan(logs, paths, s, e, p.ref_of, p.cfg, labels, profiles=not same_log)
        else:  # blocks of parts on the engine's workers, merged here (monitor.blocks)
            groups = scan_blocks(
                p.engine,
                logs,
                p.cfg.artifacts_root,
                paths,
                s,
                e,
                p.ref_of,
                p.cfg,
                labels,
                profiles=not same_log,
            )
        for (version, role), g in groups.items():
            pcols, pres = performance_part(g, p.cfg)
            if same_log and (version, role) in have:
                row = store.monitoring.window(have[(version, role)]["id"])
                store.monitoring.update_window(
                    row["id"], **pcols, label_files=fp_lab, results={**row["results"], **pres}
                )
                out["relabelled"] += 1
            else:
                prev = [
                    r["rows"]
                    for r in store.monitoring.series(
                        endpoint, version=version, role=role, until=s, limit=24
                    )
                ]
                fcols, fres = full_part(g, p.cfg, prev)
                prof = window_profile(g)
                digest = p.artifacts.put_bytes(prof.to_bytes(), suffix=".profile") if prof else None
                ref = p.ref_of(version)
                fres["reference"] = {"version": version, "profile": ref.digest if ref else None}
                store.monitoring.save_window(
                    endpoint=endpoint,
                    version=version,
                    role=role,
                    start=s,
                    end=e,
                    **fcols,
                    **pcols,
                    profile=digest,
                    results={**fres, **pres},
                    log_files=fp_log,
                    label_files=fp_lab,
                )
                out["computed"] += 1
            out["changed"].setdefault((version, role), []).append(s)
    return out


def run_monitor(
    cfg: Config,
    store: Store,
    *,
    now: float | None = None,
    progress: Steps | None = None,
    delivery: Delivery | None = None,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """One pass over all endpoints: new windows, label updates, then alert rules.

    Returns ``{"endpoints": {name: {computed, relabelled, unchanged, alerts}}, "windows": n,
    "alerts": [events]}``. Only one monitor runs at a time across processes (a store lease);
    a pass that finds the lease taken returns ``{"skipped": reason}``.
    """
    now = time.time() if now is None else now
    steps = progress or NullSteps()
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not store.locks.acquire(LOCK, holder, ttl=max(600.0, cfg.monitor.schedule * 10)):
        return {"skipped": f"another monitor holds the lock ({store.locks.holder(LOCK)})"}
    try:
        p = Pass(cfg, store, engine)
        summary: dict[str, Any] = {"endpoints": {}, "windows": 0, "alerts": []}
        for endpoint in p.logs.endpoints():
            with steps.step(f"Monitor endpoint {endpoint}"):
                res = monitor_endpoint(p, endpoint, now)
                events: list[dict[str, Any]] = []
                for (version, role), starts in sorted(res.pop("changed").items()):
                    ref = p.ref_of(version)
                    events += alert_rules.evaluate(
                        store,
                        cfg,
                        endpoint,
                        version,
                        role,
                        starts,
                        ref.baseline if ref else {},
                        delivery=delivery,
                    )
                res["alerts"] = events
                summary["endpoints"][endpoint] = res
                summary["windows"] += res["computed"] + res["relabelled"]
                summary["alerts"] += [{"endpoint": endpoint, **ev} for ev in events]
                steps.note(
                    f"{res['computed']} new windows, {res['relabelled']} with new labels, "
                    f"{len(events)} alert events"
                )
        return summary
    finally:
        store.locks.release(LOCK, holder)
