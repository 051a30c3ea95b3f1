"""What a caller below admin may see: endpoint scopes and paths kept out of answers.

A key created with ``loopml keys create --role R --endpoint E ...`` is limited to those
endpoints on every route (:func:`before` and :func:`after`, called by the route guard in
:mod:`loopml.serve.http.application`; the dashboard applies the same rule in :mod:`loopml.ui.session`):

- a route with an ``{endpoint}`` in its path answers 403 for another endpoint (and
  ``POST /invocations`` for the server's default endpoint);
- a version (``/v1/versions/{version}``, its kill switch) is reachable when its model is the
  model of one of the key's endpoints;
- lists (endpoints, versions, decisions, alerts) hold only the key's endpoints' rows;
- labels for request ids of other endpoints are refused (in the labels handler);
- ``/v1/keys`` is for unscoped admin keys only.

Answers to callers below admin never hold a filesystem path or a storage URL
(:func:`redact_paths`): error messages (a model that failed to load names its artifact file)
and the JSON of the read routes are scrubbed. Admins see paths: they run the server.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from loopml.errors import ForbiddenError, LoopmlError
from loopml.serve.access.auth import RANK, Principal
from loopml.serve.http import admin, handlers

ADMIN = RANK["admin"]
_ECHO = 64

# An absolute path (two segments or more) that is not one of this API's own routes, or a
# storage URL; both become "<path>".
_API = r"(?:v1|v2|endpoints|invocations|versions|windows|decisions|review|login|logout|static|metrics|healthz|openapi\.json)\b"
_PATH = re.compile(
    r"(?:\b(?:s3|gs|gcs|az|abfs|abfss|file|hdfs)://[^\s'\"<>,;)]+)"
    rf"|(?<![\w.~:/-])/(?!{_API})[\w.@+=-]+(?:/[\w.@+=-]*)+"
)
PLACEHOLDER = "<path>"


def redact_paths(text: str) -> str:
    """``text`` without filesystem paths or storage URLs."""
    return _PATH.sub(PLACEHOLDER, text)


def scrub(exc: LoopmlError, who: Principal) -> None:
    """Remove paths from an error's message when the caller is below admin (in place)."""
    if who.rank < ADMIN:
        exc.message = redact_paths(exc.message)
        exc.args = (exc.message,)


def scrub_body(response: Response, who: Principal) -> Response:
    """A JSON read answer without paths, for a caller below admin."""
    if who.rank >= ADMIN or response.media_type != "application/json":
        return response
    body = bytes(response.body)
    clean = _PATH.sub(PLACEHOLDER, body.decode("utf-8", "replace")).encode()
    if clean == body:
        return response
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(clean, response.status_code, headers=headers, media_type=response.media_type)


def require(who: Principal, endpoint: str | None) -> None:
    """403 unless ``who`` may use ``endpoint``."""
    who.require(endpoint)


async def models_of(rt: Any, who: Principal) -> set[str]:
    """The models served by the key's endpoints."""
    rows = await asyncio.to_thread(rt.store.endpoints.list)
    return {r["model"] for r in rows if who.endpoints is None or r["name"] in who.endpoints}


async def before(request: Request, rt: Any, who: Principal, handler: Any) -> None:
    """Refuse what a scoped key may not reach, before the handler runs."""
    params = request.path_params
    if "endpoint" in params:
        require(who, params["endpoint"])
    elif handler is handlers.invocations:
        require(who, rt.settings.default_endpoint)
    if handler is admin.list_keys:
        raise ForbiddenError(
            f"Key {who.prefix} is limited to endpoints; listing API keys needs an admin key "
            "for every endpoint.",
            field="authorization",
        )
    if "version" in params and handler in (admin.get_version, admin.disable):
        try:
            vid = int(params["version"])
            version = await asyncio.to_thread(rt.store.versions.get, vid)
        except (ValueError, OverflowError, LoopmlError):
            return  # the handler answers the bad id or the unknown version itself
        if version["model"] not in await models_of(rt, who):
            raise ForbiddenError(
                f"Key {who.prefix} is limited to the endpoint(s) "
                f"{', '.join(sorted(who.endpoints or ()))}; version {vid} is not a version "
                "of their model.",
                field="version",
            )


# list routes and the field their rows are filtered on
_ROWS = {
    admin.list_endpoints: "name",
    admin.list_decisions: "endpoint",
    admin.list_alerts: "endpoint",
}


async def after(response: Response, rt: Any, who: Principal, handler: Any) -> Response:
    """Keep only the rows of the key's endpoints in a list answer."""
    if response.status_code != 200 or (handler not in _ROWS and handler is not admin.list_versions):
        return response
    rows = json.loads(bytes(response.body))
    if handler is admin.list_versions:
        models = await models_of(rt, who)
        kept = [r for r in rows if r.get("model") in models]
    else:
        scope = who.endpoints or frozenset()
        kept = [r for r in rows if r.get(_ROWS[handler]) in scope]
    return Response(json.dumps(kept, default=str), media_type="application/json")
