"""``create_app(settings)``: the serving ASGI app (Starlette, no FastAPI: it is measured to cost
less per request, serving.md §1). Nothing is created at import time.

:data:`ROUTES` is the single place that says which role each route needs (viewer < predictor
< labeller < deployer < admin; ``open`` = no key). ``/metrics`` is open, like the health
routes, so a Prometheus scraper needs no key; it shows counts by endpoint and version, never
request data. Bind the server to a private interface if endpoint names are secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loopml.serve import admin, explaining, handlers
from loopml.serve.auth import OPEN, RANK
from loopml.serve.middleware import build_middleware, error_handlers
from loopml.serve.runtime import Runtime
from loopml.serve.settings import Settings

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
    ("GET", "/v1/decisions", "viewer", admin.list_decisions),
    ("GET", "/v1/alerts", "viewer", admin.list_alerts),
    ("GET", "/v1/monitors/{endpoint}", "viewer", admin.list_windows),
    ("GET", "/v1/keys", "admin", admin.list_keys),
)

# The prediction routes skip Starlette's router (loopml.serve.middleware.FastRoutes).
FAST = (handlers.v2_infer, handlers.predict, handlers.invocations)


def guard(
    role: str, handler: Handler, runtime: Runtime
) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint: check the caller's key for ``role``, then run ``handler``."""
    assert role == OPEN or role in RANK, role
    check = runtime.auth.check

    if role == OPEN:

        async def open_endpoint(request: Request) -> Response:
            return await handler(request, runtime, None)

        return open_endpoint

    async def endpoint(request: Request) -> Response:
        who = check(request.headers.get("authorization"), role)
        request.scope["loopml.actor"] = who.actor
        return await handler(request, runtime, who)

    return endpoint


def create_app(settings: Settings) -> Starlette:
    """The serving app for ``settings``; its lifespan loads the models and opens the log.

    ``app.state.runtime`` is the :class:`~loopml.serve.runtime.Runtime` (store, pool,
    watcher, log, auth, metrics).
    """
    runtime = Runtime(settings)
    routes = [
        Route(path, guard(role, handler, runtime), methods=[method], name=handler.__name__)
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
            runtime.metrics, access_log_on=settings.access_log, fast=fast, debug=settings.debug
        ),
        exception_handlers=error_handlers(settings.debug),
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    return app
