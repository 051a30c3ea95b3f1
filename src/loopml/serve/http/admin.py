"""JSON admin routes: the same store functions the CLI calls, with the key as the actor.

Mutations (deploy, promote, rollback, disable, enable) go through ``loopml.store`` with
``actor="key:<prefix>"``, so the decisions log records who did it. After a mutation the
handler runs one traffic sync before answering, so the answer reflects what the server now
serves (the poller would apply it within ~200 ms anyway). Store calls are blocking SQL and
run in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from loopml.errors import DataError, NotFoundError
from loopml.serve.access.auth import Principal
from loopml.serve.http.middleware import JSON, read_body, require_json
from loopml.serve.inference.runtime import Runtime
from loopml.serve.wire.protocols import expect, loads
from loopml.store.rows import EndpointChange

_LIMIT_MAX = 10_000


def _json(obj: Any, status: int = 200) -> Response:
    return Response(json.dumps(obj, default=str), status_code=status, media_type=JSON)


async def _object(request: Request, rt: Runtime) -> dict[str, Any]:
    """The JSON object body (an empty body is ``{}``)."""
    require_json(request)
    body = await read_body(request, rt.settings.serve.max_body_bytes)
    if not body.strip():
        return {}
    doc = loads(body)
    expect(isinstance(doc, dict), "The body must be a JSON object.", "body")
    return doc


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DataError(f"'{field}' must be an integer.", field=field)
    try:
        return int(value)
    except ValueError:
        raise DataError(f"'{field}' must be an integer.", field=field) from None


def _reason(doc: dict[str, Any]) -> str:
    reason = doc.get("reason", "")
    expect(
        isinstance(reason, str) and len(reason) <= 2000,
        "'reason' must be a string (at most 2000 characters).",
        "reason",
    )
    return reason


def _query_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = _int(raw, name)
    expect(0 < value <= _LIMIT_MAX, f"'{name}' must be between 1 and {_LIMIT_MAX}.", name)
    return value


def _serving(rt: Runtime, name: str) -> dict[str, Any]:
    st = rt.watcher.endpoints.get(name)
    if st is None:
        return {"loaded": [], "load_error": None, "ready": False}
    table = st.router.table if st.router else None
    return {
        "ready": rt.watcher.unavailable(name) is None,
        "serving": table.serving if table else None,
        "canary": table.canary if table else None,
        "canary_weight": table.canary_weight if table else 0.0,
        "shadows": [list(s) for s in table.shadows] if table else [],
        "disabled": sorted(table.disabled) if table else [],
        "loaded": sorted(st.versions),
        "load_error": st.load_error,
        "swapped_at": st.swapped_at,
    }


async def _sync_then_show(rt: Runtime, name: str, row: EndpointChange) -> Response:
    await rt.watcher.sync()
    return _json({**row, "server": _serving(rt, name)})


# -- reads ------------------------------------------------------------------------------------


async def list_endpoints(request: Request, rt: Runtime, who: Principal) -> Response:
    rows = await asyncio.to_thread(rt.store.endpoints.list)
    known = {r["name"] for r in rows}
    out = [{**r, "server": _serving(rt, r["name"])} for r in rows]
    out += [
        {"name": n, "champion_id": None, "server": _serving(rt, n)}
        for n in rt.watcher.endpoints
        if n not in known
    ]
    return _json(out)


async def get_endpoint(request: Request, rt: Runtime, who: Principal) -> Response:
    name = request.path_params["endpoint"]
    try:
        row = await asyncio.to_thread(rt.store.endpoints.get, name)
    except NotFoundError:
        if name not in rt.watcher.endpoints:
            raise
        return _json({"name": name, "champion_id": None, "server": _serving(rt, name)})
    return _json({**row, "server": _serving(rt, name)})


async def list_versions(request: Request, rt: Runtime, who: Principal) -> Response:
    q = request.query_params
    rows = await asyncio.to_thread(
        rt.store.versions.list,
        model=q.get("model"),
        status=q.get("status"),
        limit=_query_int(request, "limit", 500),
    )
    return _json(rows)


async def get_version(request: Request, rt: Runtime, who: Principal) -> Response:
    vid = _int(request.path_params["version"], "version")
    return _json(await asyncio.to_thread(rt.store.versions.get, vid))


async def list_decisions(request: Request, rt: Runtime, who: Principal) -> Response:
    q = request.query_params
    rows = await asyncio.to_thread(
        rt.store.decisions.list,
        endpoint=q.get("endpoint"),
        actor=q.get("actor"),
        action=q.get("action"),
        limit=_query_int(request, "limit", 200),
    )
    return _json(rows)


async def list_alerts(request: Request, rt: Runtime, who: Principal) -> Response:
    """``GET /v1/alerts``, newest first; ``?status=open|resolved``, ``endpoint``, ``rule``."""
    q = request.query_params
    status = q.get("status")
    expect(status in (None, "open", "resolved"), "'status' must be open or resolved.", "status")
    rows = await asyncio.to_thread(
        rt.store.monitoring.alerts,
        status=status,
        endpoint=q.get("endpoint"),
        rule=q.get("rule"),
        limit=_query_int(request, "limit", 200),
    )
    return _json(rows)


async def list_windows(request: Request, rt: Runtime, who: Principal) -> Response:
    """``GET /v1/monitors/{endpoint}``: the newest ``limit`` monitor windows' summary numbers,
    oldest first (``/windows/{id}.json`` on the dashboard has one window's detail)."""
    name = request.path_params["endpoint"]
    rows = await asyncio.to_thread(
        rt.store.monitoring.series, name, limit=_query_int(request, "limit", 500)
    )
    if not rows and name not in await asyncio.to_thread(rt.store.monitoring.endpoints):
        raise NotFoundError(
            f"No monitor window for endpoint {name[:64]!r} yet. Run 'loopml monitor' (or let "
            "'loopml serve' run it) after the endpoint has served predictions.",
            field="endpoint",
        )
    return _json(rows)


async def list_keys(request: Request, rt: Runtime, who: Principal) -> Response:
    return _json(await asyncio.to_thread(rt.store.keys.list))


# -- mutations --------------------------------------------------------------------------------


async def deploy(request: Request, rt: Runtime, who: Principal) -> Response:
    """``{"version": N, "canary": PCT?, "shadow": bool?, "shadow_fraction": F?, "reason"?}``."""
    name = request.path_params["endpoint"]
    doc = await _object(request, rt)
    vid = _int(doc.get("version"), "version")
    canary = doc.get("canary")
    expect(
        canary is None or (isinstance(canary, int | float) and not isinstance(canary, bool)),
        "'canary' must be a percentage.",
        "canary",
    )
    shadow = doc.get("shadow", False)
    expect(isinstance(shadow, bool), "'shadow' must be true or false.", "shadow")
    fraction = doc.get("shadow_fraction", 1.0)
    expect(
        isinstance(fraction, int | float) and not isinstance(fraction, bool) and 0 < fraction <= 1,
        "'shadow_fraction' must be in (0, 1].",
        "shadow_fraction",
    )
    expect(not (shadow and canary is not None), "Send 'canary' or 'shadow', not both.", "canary")
    reason = _reason(doc)

    def run() -> EndpointChange:
        version = rt.store.versions.get(vid)
        return rt.store.endpoints.deploy(
            name,
            version,
            actor=who.actor,
            reason=reason,
            canary=canary,
            shadow=shadow,
            shadow_fraction=float(fraction),
        )

    return await _sync_then_show(rt, name, await asyncio.to_thread(run))


async def promote(request: Request, rt: Runtime, who: Principal) -> Response:
    name = request.path_params["endpoint"]
    doc = await _object(request, rt)
    vid = _int(doc.get("version"), "version")
    await asyncio.to_thread(rt.store.versions.get, vid)  # 404 for an unknown version
    row = await asyncio.to_thread(
        rt.store.endpoints.promote, name, vid, actor=who.actor, reason=_reason(doc)
    )
    return await _sync_then_show(rt, name, row)


async def rollback(request: Request, rt: Runtime, who: Principal) -> Response:
    name = request.path_params["endpoint"]
    doc = await _object(request, rt)
    row = await asyncio.to_thread(
        rt.store.endpoints.rollback, name, actor=who.actor, reason=_reason(doc)
    )
    return await _sync_then_show(rt, name, row)


async def disable(request: Request, rt: Runtime, who: Principal) -> Response:
    """The kill switch: out of this server's traffic at once, then out of the store's."""
    vid = _int(request.path_params["version"], "version")
    doc = await _object(request, rt)
    reason = _reason(doc) or f"kill switch over the API by {who.actor}"
    await asyncio.to_thread(rt.store.versions.get, vid)  # 404 before anything changes
    rt.watcher.disable(vid)
    removal = await asyncio.to_thread(rt.store.disable, vid, actor=who.actor, reason=reason)
    await rt.watcher.sync()
    return _json({"version": vid, "status": "disabled", "removed_from": removal.endpoints})


async def enable(request: Request, rt: Runtime, who: Principal) -> Response:
    """Undo the kill switch (admin only): the version returns as a candidate, in no traffic."""
    vid = _int(request.path_params["version"], "version")
    doc = await _object(request, rt)
    reason = _reason(doc) or f"re-enabled over the API by {who.actor}"
    row = await asyncio.to_thread(rt.store.enable, vid, actor=who.actor, reason=reason)
    return _json({"version": vid, "status": row["status"]})
