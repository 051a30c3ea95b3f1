"""``create_app(settings)``: the serving ASGI app (Starlette, no FastAPI: the HTTP stack sets
the per-request ceiling, docs/design/measurements.md, "Serving"). Nothing is created at import time.

:data:`ROUTES` is the single place that says which role each route needs (viewer < predictor
< labeller < deployer < admin; ``open`` = no key). ``/metrics`` is open, like the health
routes, so a Prometheus scraper needs no key; it shows counts by endpoint and version, never
request data. Bind the server to a private interface if endpoint names are secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loopml.errors import ForbiddenError, LoopmlError, NotFoundError
from loopml.serve.access import scopes
from loopml.serve.access.auth import OPEN, RANK
from loopml.serve.access.sessions import COOKIE
from loopml.serve.http import admin, handlers, openapi
from loopml.serve.http import explain_route as explaining
from loopml.serve.http.middleware import build_middleware, error_handlers, require_json
from loopml.serve.inference.runtime import Runtime
from loopml.serve.settings import Settings
from loopml.store.endpoints import ENDPOINT_NAME, check_endpoint_name

Handler = Callable[[Request, Runtime, Any], Awaitable[Response]]

# (method, path, role, handler)
ROUTES: tuple[tuple[str, str, str, Handler], ...] = (
    ("GET", "/healthz", OPEN, handlers.healthz),
    ("GET", "/metrics", OPEN, handlers.metrics),
    ("GET", "/v2", OPEN, handlers.v2_server),
    ("GET", "/v2/health/live", OPEN, handlers.v2_live),
    ("GET", "/v2/health/ready", OPEN, handlers.v2_ready),
    ("GET", "/v2/models/{endpoint}", "viewer", handlers.v2_model),
    ("GET", "/v2/models/{endpoint}/ready", "viewer", handlers.v2_model_ready),
    ("POST", "/v2/models/{endpoint}/infer", "predictor", handlers.v2_infer),
    ("GET", "/v2/models/{endpoint}/versions/{version}", "viewer", handlers.v2_model),
    ("GET", "/v2/models/{endpoint}/versions/{version}/ready", "viewer", handlers.v2_model_ready),
    ("POST", "/v2/models/{endpoint}/versions/{version}/infer", "predictor", handlers.v2_infer),
    ("POST", "/v1/endpoints/{endpoint}/predict", "predictor", handlers.predict),
    ("POST", "/v1/endpoints/{endpoint}/explain", "predictor", explaining.explain),
    ("POST", "/endpoints/{endpoint}/invocations", "predictor", handlers.invocations),
    ("POST", "/invocations", "predictor", handlers.invocations),
    ("POST", "/v1/labels", "labeller", handlers.labels),
    ("GET", "/v1/endpoints", "viewer", admin.list_endpoints),
    ("GET", "/v1/endpoints/{endpoint}", "viewer", admin.get_endpoint),
    ("POST", "/v1/endpoints/{endpoint}/deploy", "deployer", admin.deploy),
    ("POST", "/v1/endpoints/{endpoint}/promote", "deployer", admin.promote),
    ("POST", "/v1/endpoints/{endpoint}/rollback", "deployer", admin.rollback),
    ("GET", "/v1/versions", "viewer", admin.list_versions),
    ("GET", "/v1/versions/{version}", "viewer", admin.get_version),
    ("POST", "/v1/versions/{version}/disable", "deployer", admin.disable),
    ("POST", "/v1/versions/{version}/enable", "admin", admin.enable),
    ("GET", "/v1/decisions", "viewer", admin.list_decisions),
    ("GET", "/v1/alerts", "viewer", admin.list_alerts),
    ("GET", "/v1/monitors/{endpoint}", "viewer", admin.list_windows),
    ("GET", "/v1/keys", "admin", admin.list_keys),
    ("GET", "/openapi.json", OPEN, openapi.openapi_json),
)

# Every other POST changes state and needs a JSON content type (cross-site forms cannot send
# one); the prediction protocols keep their clients' content types (tritonclient sends none).
LENIENT = (handlers.v2_infer, handlers.predict, handlers.invocations)
# The routes of the data plane, which run thousands of times a second, skip Starlette's router
# (loopml.serve.http.middleware.FastRoutes): the predictions and the labels that follow them.
FAST = (*LENIENT, handlers.labels)


def guard(
    role: str, handler: Handler, runtime: Runtime, method: str = "GET", path: str = ""
) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint: check the caller's key for ``role`` (and, on a state-changing
    route, a JSON content type), then run ``handler``."""
    assert role == OPEN or role in RANK, role
    check = runtime.auth.acheck
    strict = method == "POST" and handler not in LENIENT
    reads = method == "GET"
    has_version = "{version}" in path
    has_endpoint = "{endpoint}" in path
    creates = handler is admin.deploy  # a bad name to create is a 400 naming the rule

    if role == OPEN:

        async def open_endpoint(request: Request) -> Response:
            return await handler(request, runtime, None)

        return open_endpoint

    async def endpoint(request: Request) -> Response:
        header = request.headers.get("authorization")
        token = None if header else request.cookies.get(COOKIE)
        if token:  # the dashboard's session (loopml.serve.access.sessions), for its actions
            if not reads:
                same_origin(request)
            who = await runtime.auth.acheck_session(token, role)
        else:
            who = await check(header, role)
        request.scope["loopml.actor"] = who.actor
        if strict:
            require_json(request, missing_ok=False)
        if has_version:
            check_version_id(request.path_params["version"])
        if has_endpoint and not ENDPOINT_NAME.match(request.path_params["endpoint"]):
            if creates:
                check_endpoint_name(request.path_params["endpoint"])
            raise NotFoundError(  # deploy refuses such names, so no endpoint has one
                f"No endpoint {request.path_params['endpoint'][:64]!r}: endpoint names are "
                "letters, digits, '.', '_' or '-'. List endpoints with GET /v1/endpoints.",
                field="endpoint",
            )
        scoped = who.endpoints is not None
        try:
            if scoped:
                await scopes.before(request, runtime, who, handler)
            response = await handler(request, runtime, who)
        except LoopmlError as exc:
            scopes.scrub(exc, who)  # no paths in answers below admin
            raise
        if scoped:
            response = await scopes.after(response, runtime, who, handler)
        return scopes.scrub_body(response, who) if reads else response

    return endpoint


_MAX_ID = 2**63 - 1


def check_version_id(raw: str) -> None:
    """A ``{version}`` in a path: a positive integer a database column can hold, else 4xx."""
    if not raw.isascii() or not raw.isdigit() or int(raw) > _MAX_ID:
        raise NotFoundError(
            f"No model version {raw[:20]!r}: a version id is a positive integer (at most "
            "2^63-1). List versions with GET /v1/versions.",
            field="version",
        )


def same_origin(request: Request) -> None:
    """A POST authenticated by the session cookie must come from this server's own pages."""
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is None or urlsplit(origin).netloc.lower() != host.lower():
        raise ForbiddenError(
            "A request that acts with the dashboard's session must come from the dashboard "
            f"itself (Origin {str(origin)[:64]!r} is not this server). Scripts send "
            "'Authorization: Bearer <key>' instead.",
            field="origin",
        )


def create_app(settings: Settings) -> Starlette:
    """The serving app for ``settings``; its lifespan loads the models and opens the log.

    ``app.state.runtime`` is the :class:`~loopml.serve.inference.runtime.Runtime` (store, pool,
    watcher, log, auth, metrics).
    """
    runtime = Runtime(settings)
    routes = [
        Route(
            path,
            guard(role, handler, runtime, method, path),
            methods=[method],
            name=handler.__name__,
        )
        for method, path, role, handler in ROUTES
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    fast = [r for r, (_, _, _, h) in zip(routes, ROUTES, strict=True) if h in FAST]
    app = Starlette(
        debug=False,
        routes=routes,
        middleware=build_middleware(
            runtime.metrics,
            access_log_on=settings.access_log,
            fast=fast,
            debug=settings.debug,
            auth_on=settings.auth,
            allowed_hosts=tuple(settings.serve.allowed_hosts),
        ),
        exception_handlers=error_handlers(settings.debug),
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    return app
