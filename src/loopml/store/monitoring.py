"""Queries for the monitor's tables: per-window results and alerts.

Window rows are keyed by (endpoint, version, role, start) and written with ``save_window``
(insert, or update the same key), so reruns never duplicate a window. ``series`` reads only
the summary columns, for charts over many windows; ``window`` returns one row with its full
``results`` (kept in ``monitor_results``, one row per window). Alerts are deduplicated by
(rule, endpoint, subject): the monitor keeps at most one open row per key and updates it
instead of inserting another.
"""

from __future__ import annotations

import time
from typing import Any, cast

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from loopml.errors import NotFoundError
from loopml.store.rows import AlertRow, WindowRow, WindowSummary
from loopml.store.tables import alerts, monitor_results, monitor_windows
from loopml.store.util import row_dict

W = monitor_windows.c
R = monitor_results.c
SUMMARY = (
    "id",
    "endpoint",
    "version",
    "role",
    "start",
    "end",
    "rows",
    "labels",
    "metric",
    "performance",
    "estimated_performance",
    "accuracy",
    "estimated_accuracy",
    "drift_score",
    "drifted",
    "n_drifted",
    "prediction_drift",
    "quality_errors",
    "quality_warnings",
    "fairness_ratio",
    "latency_p50",
    "latency_p99",
    "errors",
    "estimate_status",
    "label_drift",
    "base_rate",
    "multivariate_auc",
)
_SUMMARY_COLS = [monitor_windows.c[name] for name in SUMMARY]


def _of_windows(
    q: Any,
    endpoint: str,
    version: int | None,
    role: str | None,
    since: float | None,
    until: float | None,
) -> Any:
    """``q`` over the endpoint's windows, of one version, one role, starting in [since, until)
    where those are given."""
    q = q.where(W.endpoint == endpoint)
    if version is not None:
        q = q.where(W.version == version)
    if role is not None:
        q = q.where(W.role == role)
    if since is not None:
        q = q.where(W.start >= since)
    if until is not None:
        q = q.where(W.start < until)
    return q


def _put_results(conn: Any, window_id: int, results: dict[str, Any] | None) -> None:
    if results is None:
        return
    done = conn.execute(
        update(monitor_results).where(R.window_id == window_id).values(results=results)
    )
    if done.rowcount == 0:
        conn.execute(insert(monitor_results).values(window_id=window_id, results=results))


def _compiled(conn: Any, q: Any) -> tuple[str, Any]:
    """The statement as driver SQL and parameters: a plain cursor fetch skips SQLAlchemy's
    per-row processing, which dominates a year of hourly windows (only plain types here)."""
    c = q.compile(dialect=conn.dialect)
    params = c.params
    if c.positional:
        return str(c), tuple(params[k] for k in c.positiontup)
    return str(c), params


class Monitoring:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ windows
    def save_window(
        self,
        *,
        endpoint: str,
        version: int,
        role: str,
        start: float,
        results: dict[str, Any] | None = None,
        **values: Any,
    ) -> int:
        """Insert the window's row, or update the row with the same key; returns its id."""
        now = time.time()
        key = (W.endpoint == endpoint, W.version == version, W.role == role, W.start == start)
        for _ in range(3):
            with self.engine.begin() as conn:
                found = conn.execute(select(W.id).where(*key)).scalar()
                if found is not None:
                    conn.execute(
                        update(monitor_windows)
                        .where(W.id == found)
                        .values(updated_at=now, **values)
                    )
                    _put_results(conn, int(found), results)
                    return int(found)
                try:
                    with conn.begin_nested():
                        res = conn.execute(
                            insert(monitor_windows).values(
                                endpoint=endpoint,
                                version=version,
                                role=role,
                                start=start,
                                computed_at=now,
                                updated_at=now,
                                **values,
                            )
                        )
                        wid = int(res.inserted_primary_key[0])  # type: ignore[index]
                        _put_results(conn, wid, results)
                    return wid
                except SAIntegrityError:
                    continue  # another monitor inserted the same key: update it instead
        raise AssertionError("window row neither inserted nor found")

    def update_window(
        self, window_id: int, *, results: dict[str, Any] | None = None, **values: Any
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(monitor_windows)
                .where(W.id == window_id)
                .values(updated_at=time.time(), **values)
            )
            _put_results(conn, window_id, results)

    def fingerprints(
        self, endpoint: str, *, since: float | None = None
    ) -> dict[float, dict[tuple[int, str], dict[str, Any]]]:
        """start -> (version, role) -> {id, log_files, label_files} for an endpoint's windows."""
        q = select(W.id, W.version, W.role, W.start, W.log_files, W.label_files).where(
            W.endpoint == endpoint
        )
        if since is not None:
            q = q.where(W.start >= since)
        out: dict[float, dict[tuple[int, str], dict[str, Any]]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                out.setdefault(float(r.start), {})[(int(r.version), r.role)] = {
                    "id": r.id,
                    "log_files": r.log_files,
                    "label_files": r.label_files,
                }
        return out

    def series(
        self,
        endpoint: str,
        *,
        version: int | None = None,
        role: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[WindowSummary]:
        """Summary numbers of an endpoint's windows in time order (no per-column detail)."""
        q = _of_windows(select(*_SUMMARY_COLS), endpoint, version, role, since, until)
        if limit is not None:  # the newest ``limit`` windows, still returned oldest first
            q = q.order_by(W.start.desc(), W.id.desc()).limit(limit)
        else:
            q = q.order_by(W.start, W.id)
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(*_compiled(conn, q)).fetchall()
        out = [cast(WindowSummary, dict(zip(SUMMARY, r, strict=True))) for r in rows]
        for r in out:  # SQLite returns booleans as 0/1
            r["drifted"] = bool(r["drifted"])
        return out[::-1] if limit is not None else out

    def columns(
        self,
        endpoint: str,
        names: tuple[str, ...],
        *,
        version: int | None = None,
        role: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> dict[str, list[Any]]:
        """The named summary columns of an endpoint's windows in time order, as lists (no dict
        per row: a year of hourly windows reads in tens of milliseconds for the charts)."""
        q = _of_windows(
            select(*(monitor_windows.c[n] for n in names)), endpoint, version, role, since, until
        )
        q = q.order_by(W.start, W.id)
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(*_compiled(conn, q)).fetchall()
        values = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        return {n: list(c) for n, c in zip(names, values, strict=True)}

    def window(self, window_id: int) -> WindowRow:
        """One window's row with its full ``results``."""
        with self.engine.connect() as conn:
            r = conn.execute(
                select(monitor_windows, R.results)
                .outerjoin(monitor_results, R.window_id == W.id)
                .where(W.id == int(window_id))
            ).first()
        if r is None:
            raise NotFoundError(
                f"No monitor window {window_id}. List an endpoint's windows with "
                "the monitor's series query (GET /v1/monitors/<endpoint>).",
                field="window",
            )
        out = cast(WindowRow, row_dict(r))
        out["results"] = out["results"] or {}
        return out

    def window_at(self, endpoint: str, version: int, role: str, start: float) -> WindowRow | None:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(W.id).where(
                    W.endpoint == endpoint, W.version == version, W.role == role, W.start == start
                )
            ).scalar()
        return None if found is None else self.window(found)

    def endpoints(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(W.endpoint).distinct().order_by(W.endpoint))]

    # ------------------------------------------------------------------ alerts
    def open_alert(self, rule: str, endpoint: str, subject: str) -> AlertRow | None:
        """The open alert of a key, if any."""
        return self._last_alert(rule, endpoint, subject, status="open")

    def last_alert(self, rule: str, endpoint: str, subject: str) -> AlertRow | None:
        """The newest alert of a key, open or resolved."""
        return self._last_alert(rule, endpoint, subject)

    def _last_alert(
        self, rule: str, endpoint: str, subject: str, status: str | None = None
    ) -> AlertRow | None:
        A = alerts.c
        q = select(alerts).where(A.rule == rule, A.endpoint == endpoint, A.subject == subject)
        if status is not None:
            q = q.where(A.status == status)
        with self.engine.connect() as conn:
            r = conn.execute(q.order_by(A.id.desc()).limit(1)).first()
        return None if r is None else cast(AlertRow, row_dict(r))

    def add_alert(self, **values: Any) -> int:
        now = time.time()
        values.setdefault("created_at", now)
        values.setdefault("updated_at", now)
        with self.engine.begin() as conn:
            return int(conn.execute(insert(alerts).values(**values)).inserted_primary_key[0])  # type: ignore[index]

    def update_alert(self, alert_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(alerts)
                .where(alerts.c.id == alert_id)
                .values(updated_at=time.time(), **values)
            )

    def alert(self, alert_id: int) -> AlertRow:
        with self.engine.connect() as conn:
            r = conn.execute(select(alerts).where(alerts.c.id == int(alert_id))).first()
        if r is None:
            raise NotFoundError(
                f"No alert {alert_id}. List alerts with GET /v1/alerts.", field="alert"
            )
        return cast(AlertRow, row_dict(r))

    def alerts(
        self,
        *,
        status: str | None = None,
        endpoint: str | None = None,
        rule: str | None = None,
        limit: int = 200,
    ) -> list[AlertRow]:
        """Alerts, newest first; ``status="open"`` for the open ones."""
        A = alerts.c
        q = select(alerts).order_by(A.id.desc()).limit(limit)
        for col, val in ((A.status, status), (A.endpoint, endpoint), (A.rule, rule)):
            if val is not None:
                q = q.where(col == val)
        with self.engine.connect() as conn:
            return [cast(AlertRow, row_dict(r)) for r in conn.execute(q)]
