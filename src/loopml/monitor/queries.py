"""What the dashboard, the HTTP API and the controller read from the monitor's results.

``timeseries`` returns columns (one list per number) for charts over many windows and reads
only the summary columns; ``window_detail`` returns one window's full results (per-column
drift with histograms, quality findings, metrics per slice, fairness groups); ``open_alerts``
the alerts still open.
"""

from __future__ import annotations

from typing import Any

from loopml.store import Store
from loopml.store.monitoring import SUMMARY
from loopml.store.rows import AlertRow, WindowRow, WindowSummary

# the summary columns a chart plots: every one but the keys and the flags it derives itself
SERIES = tuple(c for c in SUMMARY if c not in {"id", "endpoint", "drifted", "quality_warnings"})


def timeseries(
    store: Store,
    endpoint: str,
    *,
    version: int | None = None,
    role: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> dict[str, Any]:
    """An endpoint's windows as columns: ``{"id": [...], "start": [...], "accuracy": [...], ...}``."""
    cols = store.monitoring.columns(
        endpoint, ("id", *SERIES), version=version, role=role, since=since, until=until
    )
    return {"endpoint": endpoint, "n": len(cols["id"]), **cols}


def window_detail(store: Store, window_id: int) -> WindowRow:
    """One window's row with its full results."""
    return store.monitoring.window(window_id)


def open_alerts(store: Store, *, endpoint: str | None = None, limit: int = 200) -> list[AlertRow]:
    return store.monitoring.alerts(status="open", endpoint=endpoint, limit=limit)


def latest(
    store: Store, endpoint: str, *, version: int | None = None, role: str = "champion", n: int = 1
) -> list[WindowSummary]:
    """The newest ``n`` windows' summary numbers (for the controller's decay/drift triggers)."""
    return store.monitoring.series(endpoint, version=version, role=role, limit=n)
