"""Keeps each endpoint's router in step with the store, without a restart or a failed request.

Every ``poll_seconds`` (200 ms) the watcher reads ``store.endpoints.locks()`` (one small
query). When an endpoint's lock changed (deploy, promote, rollback, kill switch, by CLI, API or
controller) it reads the endpoint, builds the new :class:`~loopml.serve.inference.routing.TrafficTable`,
loads and warms every version the table needs, and only then swaps the router. Versions no
longer referenced are unloaded a few seconds later, once requests that routed on the old
table have finished. A version that fails to load leaves the previous table serving; the
failure is recorded in the decisions log (action ``load_failed``, once per version and
error) and shown by ``GET /v1/endpoints/{e}``, and the endpoint is applied again after
1, 2, 4, ... up to ``RETRY_MAX`` seconds: a failure that passes (an artifact store or a disk
that was briefly unreachable, a file put back) heals without another deploy, so one replica
does not serve an old table for good while the others moved on.

Every ``status_poll_seconds`` (1 s) the statuses of the versions in traffic are read too: a
version marked disabled by any path leaves traffic at once, falling back to the previous
champion (or 503 when there is none).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from loopml.errors import NotFoundError, UnavailableError
from loopml.serve.http.prometheus import Metrics
from loopml.serve.inference.pool import ModelPool, describe
from loopml.serve.inference.routing import Router, TrafficTable
from loopml.serve.settings import Settings
from loopml.store.outage import StoreOutage

log = logging.getLogger("loopml.serve")

OFF = ("disabled", "retired", "rejected")
RETRY_MAX = 60.0  # seconds between two tries of a table whose versions failed to load


@dataclass
class EndpointState:
    """What this server knows of one endpoint."""

    name: str
    router: Router | None = None
    lock: int | None = None
    row: dict[str, Any] | None = None
    load_error: dict[str, Any] | None = None
    swapped_at: float | None = None
    versions: frozenset[int] = field(default_factory=frozenset)
    retry_at: float | None = None  # monotonic time of the next try after a load failure
    retries: int = 0
    recorded: tuple[int, str] | None = None  # the load failure last written to the decisions

    def table(self) -> TrafficTable:
        """The table requests route on, or a 503 that says why there is none."""
        if self.router is not None:
            return self.router.table
        if self.load_error is not None:
            raise UnavailableError(
                f"Endpoint {self.name!r} has no model to answer with: version "
                f"{self.load_error['version']} failed to load ({self.load_error['error']}). "
                "Deploy another version, or fix this one: the server tries it again every "
                f"minute at most (try {self.retries} so far).",
                field="endpoint",
            )
        raise UnavailableError(
            f"Endpoint {self.name!r} has no champion version yet. Deploy one with "
            f"'loopml deploy {self.name} VERSION'.",
            field="endpoint",
        )


def table_from_row(row: Mapping[str, Any], statuses: dict[int, str]) -> TrafficTable:
    """The traffic table of an endpoint row; versions whose status is off are disabled."""
    prev = row.get("previous_champion_id")
    ids = {row["champion_id"], row["canary_id"], prev, *(s["version_id"] for s in row["shadows"])}
    disabled = frozenset(v for v in ids if v is not None and statuses.get(v) in OFF)
    return TrafficTable(
        endpoint=row["name"],
        champion=row["champion_id"],
        canary=row["canary_id"],
        canary_weight=float(row["canary_weight"] or 0.0) if row["canary_id"] is not None else 0.0,
        shadows=tuple((int(s["version_id"]), float(s["fraction"])) for s in row["shadows"]),
        previous=(prev,) if prev is not None else (),
        disabled=disabled,
    )


class TrafficWatcher:
    """Polls the store and swaps routers; see the module docstring."""

    def __init__(self, settings: Settings, store: Any, pool: ModelPool, metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.pool = pool
        self.metrics = metrics
        self.endpoints: dict[str, EndpointState] = {
            name: EndpointState(name) for name in settings.endpoints
        }
        self.synced = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._unload: asyncio.TimerHandle | None = None
        self.unload_delay = 5.0

    # -- state ------------------------------------------------------------------------------

    def state(self, name: str) -> EndpointState:
        st = self.endpoints.get(name)
        if st is None:
            raise NotFoundError(
                f"No endpoint {name[:64]!r} on this server. List endpoints with GET /v1/endpoints.",
                field="endpoint",
            )
        return st

    def ready(self) -> bool:
        """True once every endpoint that has a champion has its models loaded, and no
        endpoint the store knows is left with nothing to serve (the kill switch took its
        last version)."""
        if not self.synced:
            return False
        for st in self.endpoints.values():
            if st.row is None:
                continue
            if st.router is None:
                if st.row["champion_id"] is not None:
                    return False
            elif st.router.table.serving is None:
                return False
        return True

    def referenced(self) -> set[int]:
        """Versions some endpoint routes to or keeps warm."""
        out: set[int] = set(self.pool.pinned)
        for st in self.endpoints.values():
            if st.router is not None:
                out |= st.versions | st.router.table.versions()
        return out

    # -- syncing ------------------------------------------------------------------------------

    async def sync(self, *, force: bool = False) -> None:
        """One pass: apply every endpoint whose lock changed (or all, with ``force``)."""
        async with self._lock:
            locks = await asyncio.to_thread(self.store.endpoints.locks)
            for name, lock in locks.items():
                st = self.endpoints.setdefault(name, EndpointState(name))
                due = st.retry_at is not None and time.monotonic() >= st.retry_at
                if force or due or st.lock != lock:
                    await self._apply(st)
            self.synced = True

    async def _apply(self, st: EndpointState) -> None:
        row = await asyncio.to_thread(self.store.endpoints.get, st.name)
        ids = {
            row["champion_id"],
            row["canary_id"],
            row.get("previous_champion_id"),
            *(s["version_id"] for s in row["shadows"]),
        } - {None}
        statuses = await asyncio.to_thread(self._statuses, ids)
        table = table_from_row(row, statuses)
        if table.serving is None:
            notes = await asyncio.to_thread(self._off_notes, row, statuses)
            table = replace(table, notes=notes)
        if st.lock != row["lock"]:
            st.retries, st.recorded = 0, None
        st.row, st.lock = row, row["lock"]
        need = table.versions()
        # earlier champions are kept warm too: the kill switch falls back to them at once
        spare = {v for v in table.previous if v not in table.disabled}
        t0 = time.perf_counter()
        failures = await self.pool.ensure(need | spare)
        failures = {v: e for v, e in failures.items() if v in need}
        if failures:
            await self._failed(st, failures)
            return
        if st.retries:
            log.info("endpoint %s: its versions loaded on try %d", st.name, st.retries + 1)
        st.retry_at, st.retries = None, 0
        for vid in need - st.versions:
            self.metrics.load_seconds.observe(self.pool.loaded[vid].load_seconds)
        if st.router is None:
            st.router = Router(table)
        else:
            st.router.swap(table)
        st.versions = frozenset(need | (spare & self.pool.loaded.keys()))
        st.load_error, st.swapped_at = None, time.time()
        log.info(
            "endpoint %s now serves %s (models ready in %.2fs)",
            st.name,
            table,
            time.perf_counter() - t0,
        )
        self._schedule_unload()

    async def _failed(self, st: EndpointState, failures: dict[int, BaseException]) -> None:
        vid, exc = next(iter(failures.items()))
        error = describe(exc)
        st.retries += 1
        wait = min(RETRY_MAX, 2.0 ** (st.retries - 1))
        st.retry_at = time.monotonic() + wait
        st.load_error = {
            "version": vid,
            "error": error,
            "at": time.time(),
            "still_serving": sorted(st.versions) if st.router else [],
            "retry_in_seconds": wait,
        }
        log.error(
            "endpoint %s: version %s failed to load (try %d; again in %gs): %s",
            st.name,
            vid,
            st.retries,
            wait,
            error,
        )
        for v in failures:
            self.metrics.load_failures.labels(str(v)).inc()
        if st.recorded == (vid, error):
            return  # the same failure again: in the log above, not again in the decisions
        st.recorded = (vid, error)
        for v, e in failures.items():
            with contextlib.suppress(Exception):  # the store being down must not stop serving
                await asyncio.to_thread(
                    self.store.decisions.record,
                    actor="server",
                    action="load_failed",
                    subject=f"version:{v}",
                    endpoint=st.name,
                    reason=f"version {v} failed to load on the server; the previous traffic "
                    f"keeps serving: {describe(e)}",
                    evidence={"error": describe(e), "error_type": type(e).__name__},
                )

    def _off_notes(self, row: dict[str, Any], statuses: dict[int, str]) -> tuple[str, ...]:
        """Why an endpoint with nothing to serve has nothing: who disabled what, when, why."""
        off = [row["champion_id"], row.get("previous_champion_id")]
        if row["champion_id"] is None:  # the kill switch took the champion out of the row
            last = self.store.decisions.list(endpoint=row["name"], action="disable", limit=1)
            if last and isinstance(last[0].get("before"), dict):
                off.insert(0, last[0]["before"].get("champion"))
                with contextlib.suppress(NotFoundError, TypeError, ValueError):
                    statuses = {**statuses, **self._statuses({int(off[0])})}
        notes = []
        for vid in dict.fromkeys(v for v in off if v is not None):
            if statuses.get(vid) == "disabled":
                notes.append(self.store.versions.disabled_note(vid))
        return tuple(notes)

    def _statuses(self, ids: set[int]) -> dict[int, str]:
        out = {}
        for vid in ids:
            with contextlib.suppress(NotFoundError):
                out[vid] = self.store.versions.get(vid)["status"]
        return out

    async def check_statuses(self) -> None:
        """Take every version in traffic that the store now marks off out of traffic."""
        live = {
            v for st in self.endpoints.values() if st.router for v in st.router.table.versions()
        }
        if not live:
            return
        statuses = await asyncio.to_thread(self._statuses, live)
        for vid, status in statuses.items():
            if status in OFF:
                note = None
                if status == "disabled":
                    note = await asyncio.to_thread(self.store.versions.disabled_note, vid)
                self.disable(vid, note)

    def disable(self, version_id: int, note: str | None = None) -> None:
        """Stop routing to ``version_id`` on every endpoint from the next request on."""
        for st in self.endpoints.values():
            if st.router is not None and version_id in st.router.table.versions():
                st.router.disable(version_id, note)
                log.warning("version %s left the traffic of %s (disabled)", version_id, st.name)

    def _schedule_unload(self) -> None:
        loop = asyncio.get_running_loop()
        if self._unload is not None:
            self._unload.cancel()
        self._unload = loop.call_later(self.unload_delay, self._unload_now)

    def _unload_now(self) -> None:
        self._unload = None
        dropped = self.pool.retain(self.referenced())
        if dropped:
            log.info("unloaded versions %s", dropped)

    # -- the background task ----------------------------------------------------------------

    async def run(self) -> None:
        """Poll forever (cancel the task to stop); errors are logged, never fatal, and an
        unreachable store once per outage (``store.outage``)."""
        s = self.settings
        outage = StoreOutage(
            log,
            meanwhile="serving from the cached traffic table",
            resumed="the traffic table follows the store again",
            retry_seconds=s.poll_seconds,
        )
        next_status = 0.0
        while True:
            try:
                await self.sync()
                now = time.monotonic()
                if now >= next_status:
                    next_status = now + s.status_poll_seconds
                    await self.check_statuses()
                outage.ok()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not outage.failed(exc):
                    log.exception("traffic watcher: polling the store failed; retrying")
            await asyncio.sleep(s.poll_seconds)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._unload is not None:
            self._unload.cancel()
            self._unload = None

    def unavailable(self, name: str) -> UnavailableError | None:
        """Why ``name`` cannot answer now, or None when it can."""
        try:
            self.state(name).table().route()
        except (UnavailableError, NotFoundError) as exc:
            return exc if isinstance(exc, UnavailableError) else None
        return None
