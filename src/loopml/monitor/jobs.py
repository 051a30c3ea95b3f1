"""The monitoring pass: every closed window of every endpoint, computed once, then alerts.

Windows are aligned on multiples of ``monitor.window`` (UTC epoch) by window time (event
time where the log has it, else log time: ``parts.py``) and are closed ``monitor.grace``
after their end. A window's row records fingerprints of the parts it was computed from: a
rerun skips a window whose parts are unchanged (idempotent), recomputes only the
label-dependent part (performance, estimates, fairness, label drift) when new label parts
arrived within ``monitor.labels_within`` of it, and recomputes it whole only if new
prediction parts appeared in it (late compaction). With a ``LiveLog`` (``loopml serve`` and
``loopml monitor`` hand one down) the segments the server has not compacted yet count as parts
too, so a pass right after traffic sees it; windows still open are reported as provisional,
never stored. Alerts then follow traffic (``alerts.retire_subjects``). ``run_monitor`` is what
``loopml monitor`` runs once (cron) and ``loopml serve`` runs every ``monitor.schedule``.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loopml.artifacts.model_loader import verify_version
from loopml.artifacts.store import ArtifactStore
from loopml.config import Config
from loopml.engines import Engine
from loopml.errors import IntegrityError, NotFoundError
from loopml.logs.layout import (
    HOUR,
    LABELS,
    PREDICTIONS,
    hour_start,
    id_floor,
    is_uuid7,
    log_location,
    segment_of,
)
from loopml.logs.logfiles import LogFiles
from loopml.logs.parts import LiveLog, Part
from loopml.monitor import alerts as alert_rules
from loopml.monitor import changes
from loopml.monitor import refused as refusals
from loopml.monitor.open_windows import provisional, span, who
from loopml.monitor.reference import Reference, load_reference
from loopml.monitor.unreadable import scan_window, whole_parts
from loopml.monitor.webhooks import Delivery
from loopml.monitor.windows import full_part, performance_part, window_profile
from loopml.progress import NullSteps, Steps
from loopml.store import Store
from loopml.store.rows import EndpointRow

LOCK = "monitor"


class Pass:
    """State shared by one monitoring pass: readers and the references it loaded."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        live: LiveLog | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.cfg, self.store = cfg, store
        self.engine = engine  # None: scan in this process
        self.artifacts = ArtifactStore(cfg.artifacts_root)
        self.logs = LogFiles(log_location(cfg))
        self.refs: dict[int, Reference | None] = {}
        self.refused: dict[int, str] = {}  # version -> why its reference was not used
        key = cfg.security.public_key
        self.public_key = key if not key or "BEGIN" in key else str(cfg.path(key))
        self.segments = live
        self._seen_live: dict[tuple[str, str], list[tuple[str, pa.Table]]] = {}
        self._index: dict[tuple[str, str], list[Part]] = {}

    def live(self, kind: str, endpoint: str) -> list[tuple[str, pa.Table]]:
        """Rows of the segments the server has not compacted yet (none without a reader),
        read once per pass: every window of the pass sees the same rows."""
        if (kind, endpoint) not in self._seen_live:
            rows = [] if self.segments is None else list(self.segments(kind, endpoint))
            self._seen_live[(kind, endpoint)] = rows
        return self._seen_live[(kind, endpoint)]

    def index(self, kind: str, endpoint: str) -> list[Part]:
        """The endpoint's parts of ``kind``, live segments included, with their time ranges
        (``LogFiles.index``), listed once per pass."""
        if (kind, endpoint) not in self._index:
            self._index[(kind, endpoint)] = self.logs.index(
                kind, endpoint, self.live(kind, endpoint)
            )
        return self._index[(kind, endpoint)]

    def ref_of(self, version_id: int) -> Reference | None:
        if version_id not in self.refs:
            try:
                version = self.store.versions.get(version_id)
            except NotFoundError:
                self.refs[version_id] = None
                return None
            if self.public_key:  # an unsigned or altered version is no reference (issue 14)
                try:
                    verify_version(version, self.public_key)
                except IntegrityError as exc:
                    self.refused[version_id] = str(exc)
                    self.refs[version_id] = None
                    return None
            self.refs[version_id] = load_reference(
                self.artifacts, version, positive_class=self.cfg.data.positive_class
            )
        return self.refs[version_id]


def monitor_endpoint(p: Pass, endpoint: str, now: float) -> dict[str, Any]:
    """Compute the endpoint's closed windows that are new or whose inputs changed."""
    mon = p.cfg.monitor
    W = mon.window
    logs, store = p.logs, p.store
    label_hours = logs.hours(LABELS, endpoint)
    pred_parts = p.index(PREDICTIONS, endpoint)
    by_window = changes.windows_of(pred_parts, W)
    live_labels = [_LiveLabels(tok, t) for tok, t in p.live(LABELS, endpoint)]
    read_live = {x.segment for x in live_labels}
    closed = [s for s in by_window if s + W + mon.grace <= now]
    # only the windows whose inputs may have changed since this process's last pass
    all_labels = logs.parts(LABELS, endpoint, label_hours)
    seen = [changes.key_of(q) for q in pred_parts] + [changes.key_of(x) for x in all_labels]
    seen += [f"live:{x.token}" for x in live_labels]
    memo = changes.memo_key(p.cfg, endpoint, PREDICTIONS)
    before = changes.last(memo)
    todo = closed
    if before is not None:
        new_ids = [
            logs.value_range(path, size, "_request_id")
            for path, size in all_labels
            if changes.key_of((path, size)) not in before.parts
        ] + [x.ids for x in live_labels if f"live:{x.token}" not in before.parts and x.ids]
        new = [q for q in pred_parts if changes.key_of(q) not in before.parts]
        todo = changes.touched(before, closed, by_window, W, new, new_ids)
    known = store.monitoring.fingerprints(endpoint, since=todo[0] if todo else None)
    out: dict[str, Any] = {
        "computed": 0,
        "relabelled": 0,
        "unchanged": len(closed) - len(todo),
        "looked_at": len(todo),  # closed windows compared with their stored fingerprints
        "changed": {},
    }
    for s in todo:
        e = s + W
        parts = by_window[s]
        fp_log = logs.window_fingerprint(parts, s, e)
        # labels follow log time (request ids and label arrival), which event time may not
        lo, hi = changes.log_span(parts, s, e)
        horizon = min(hi + mon.labels_within, now)
        lab_parts = logs.parts(
            LABELS,
            endpoint,
            [h for h in label_hours if hour_start(h) + HOUR > lo and hour_start(h) < horizon],
        )
        lab_parts = logs.overlapping(
            lab_parts, "_request_id", id_floor(lo), id_floor(hi), only_if=is_uuid7
        )
        lab_parts = [x for x in lab_parts if segment_of(x[0]) not in read_live]
        lab_live = [x for x in live_labels if x.may_label(id_floor(lo), id_floor(hi))]
        fp_lab = logs.fingerprint(lab_parts + [(f"live:{x.token}", x.rows) for x in lab_live])
        have = known.get(s, {})
        same_log = bool(have) and all(x["log_files"] == fp_log for x in have.values())
        if same_log and all(x["label_files"] == fp_lab for x in have.values()):
            out["unchanged"] += 1
            continue
        labels = (
            logs.labels([path for path, _ in lab_parts], [x.table for x in lab_live])
            if lab_parts or lab_live
            else None
        )
        whole = whole_parts(p, endpoint, parts, s, e)
        if whole is None:  # nothing stored: the next pass reads the segment's new parts
            out.setdefault("waiting", []).append(
                f"window {span(s, e)}: a log segment of it was compacted during this pass; "
                "it is computed from the new parts at the next pass"
            )
            continue
        groups, bad = scan_window(p, whole, s, e, labels, profiles=not same_log)
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
                if bad:  # a finding of the window: which rows it could not read, and why
                    fres["corrupt_parts"] = bad
                    fres["notes"].append(
                        f"{len(bad)} prediction-log part(s) of this window could not be read and "
                        f"were skipped (their rows are not counted): "
                        + "; ".join(f"{k}: {v}" for k, v in bad.items())
                        + ". Restore them from a backup or remove them, then rerun the monitor."
                    )
                if version in p.refused:  # a finding of the window, not a crash of the pass
                    why = p.refused[version]
                    fres["reference"]["refused"] = why
                    fres["notes"] = [
                        f"the reference of version {version} was refused: {why} Drift, data "
                        "quality and estimates are not computed for this window."
                    ]
                    out.setdefault("refused_references", []).append(
                        f"window {span(s, e)} ({who(version, role)}): {why}"
                    )
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
            if g.rows < mon.min_window_rows:
                out.setdefault("waiting", []).append(
                    f"window {span(s, e)} ({who(version, role)}): {g.rows} rows of "
                    f"{mon.min_window_rows} needed; too few rows, not scored"
                )
    out["provisional"] = provisional(p, endpoint, by_window, now)
    bad = {k: v for k, v in p.logs.corrupt.items() if f"/endpoint={endpoint}/" in k}
    if bad:  # skipped, every other part read; each closed window it touched says so too
        out["corrupt_parts"] = bad
    changes.remember(memo, seen, closed)
    return out


class _LiveLabels:
    """A live label segment's rows and the range of request ids they label."""

    def __init__(self, token: str, table: pa.Table) -> None:
        self.token, self.table = token, table
        self.segment = token.split(":", 1)[0]
        self.rows = table.num_rows
        ids = pc.min_max(table.column("_request_id")) if self.rows else None
        self.ids = (ids["min"].as_py(), ids["max"].as_py()) if ids else None

    def may_label(self, lo: str, hi: str) -> bool:
        if self.ids is None:
            return False
        a, b = self.ids
        if not (is_uuid7(a) and is_uuid7(b)):
            return True  # ids this rule cannot order: joined everywhere (as label parts are)
        return b >= lo and a < hi


def run_monitor(
    cfg: Config,
    store: Store,
    *,
    now: float | None = None,
    progress: Steps | None = None,
    delivery: Delivery | None = None,
    live: LiveLog | None = None,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """One pass over all endpoints: new windows, label updates, then alert rules.

    ``live`` reads the segments the server has not compacted yet (given by the top floor,
    see ``logfiles.LiveLog``): without it a pass sees only compacted Parquet parts. Each
    endpoint's result lists its open windows under ``provisional`` (rows so far and what they
    wait for) and closed windows with too few rows under ``waiting``.

    Returns ``{"endpoints": {name: {computed, relabelled, unchanged, alerts}}, "windows": n,
    "alerts": [events]}``; an endpoint with refused requests also has ``refused``
    (``{"windows": [stored now], "open": [still open]}``, see ``monitor.refused``). Only one monitor runs at a time across processes (a store lease);
    a pass that finds the lease taken returns ``{"skipped": reason}``.
    """
    now = time.time() if now is None else now
    steps = progress or NullSteps()
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not store.locks.acquire(LOCK, holder, ttl=max(600.0, cfg.monitor.schedule * 10)):
        return {"skipped": f"another monitor holds the lock ({store.locks.holder(LOCK)})"}
    try:
        p = Pass(cfg, store, live, engine)
        summary: dict[str, Any] = {"endpoints": {}, "windows": 0, "alerts": []}
        with_alerts = {a["endpoint"] for a in store.monitoring.alerts(status="open", limit=10_000)}
        # registered endpoints too: their recent rows may all be in live segments still
        registered = {e["name"] for e in store.endpoints.list()} if live is not None else set()
        # an endpoint that refused every request has refused counts and no predictions
        logged = set(p.logs.endpoints()) | set(refusals.endpoints(p))
        for endpoint in sorted(logged | with_alerts | registered):
            with steps.step(f"Monitor endpoint {endpoint}"):
                try:
                    row: EndpointRow | None = store.endpoints.get(endpoint)
                except NotFoundError:
                    row = None
                # an endpoint the registry does not know (logs only) has no traffic to follow
                serving = alert_rules.live_subjects(row) if row is not None else None
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
                        live=serving,
                    )
                refused = refusals.refused_windows(p, endpoint, now)
                events += refusals.evaluate(
                    store, cfg, endpoint, refused.pop("changed"), delivery=delivery
                )
                if refused["windows"] or refused["open"]:  # stored or still open, with counts
                    res["refused"] = refused
                if row is not None:
                    events += alert_rules.retire_subjects(store, endpoint, row, now)
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
