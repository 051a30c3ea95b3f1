"""Middleware, error responses and body reading: everything around the handlers.

The order is written down once, in :func:`build_middleware` (outermost first):

1. :class:`AccessLog` — times every request and queues one structured JSON line per request
   for the ``loopml.access`` logger, written by a thread off the event loop
   (:mod:`loopml.serve.accesslog`; uvicorn's own access log is off), and counts it by route
   template and status (never by raw path: junk URLs must not create metric series).
2. :class:`FastRoutes` — the prediction routes, called without Starlette's router.
3. Starlette's ``ServerErrorMiddleware`` (added by Starlette itself, inside 1) and its
   ``ExceptionMiddleware`` (innermost) turn exceptions into the one error shape through
   :func:`error_handlers`.

Authentication is not a middleware: each route names its role in the route table
(:mod:`loopml.serve.app`), so the table is the single place that says who may call what.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopml.errors import (
    BadRequestError,
    LoopmlError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from loopml.serve.accesslog import AccessLines, access_log
from loopml.serve.metrics import Metrics
from loopml.serve.protocols import dumps

log = logging.getLogger("loopml.serve")

JSON = "application/json"


class AccessLog:
    """Pure ASGI middleware: one JSON access-log line and one metric per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, enabled: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.enabled = enabled
        self.lines = AccessLines()
        self._children: dict[tuple[str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            try:
                await self.app(scope, receive, send)
            finally:
                if scope["type"] == "lifespan":  # the server stops: write what is queued
                    self.lines.close()
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "(unmatched)")
            key = (template, status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.metrics.http.labels(template, str(status))
            child.inc()
            if self.enabled and access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                self.lines.add(  # the fields of accesslog.FIELDS, in order
                    (
                        time.time(),
                        scope["method"],
                        scope["path"][:200],
                        template,
                        status,
                        round((time.perf_counter() - t0) * 1000, 3),
                        client[0] if client else None,
                        scope.get("loopml.actor"),
                    )
                )


class FastRoutes:
    """Pure ASGI middleware: the prediction routes, dispatched straight to their endpoints.

    Prediction is the one route that runs thousands of times a second; Starlette's router
    (a regex per route, tried in order) and its exception middleware wrappers cost ~15% of
    the server's CPU per prediction (measured with py-spy under wrk). Here the routes named
    in ``fast`` are matched by their own regex and called directly, with the same error
    shape as every other route (:func:`error_response`, and a logged 500 for a bug). Every
    other request, and every request these routes do not match, goes down the stack.
    """

    def __init__(self, app: ASGIApp, routes: list[Any], debug: bool = False) -> None:
        self.app = app
        self.routes = routes
        self.internal = error_handlers(debug)[Exception]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            for route in self.routes:
                match = route.path_regex.match(path)
                if match is not None:
                    scope["route"] = route
                    scope["path_params"] = match.groupdict()
                    request = Request(scope, receive)
                    try:
                        response = await route.endpoint(request)
                    except LoopmlError as exc:
                        response = error_response(exc)
                    except Exception as exc:
                        response = await self.internal(request, exc)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def build_middleware(
    metrics: Metrics,
    *,
    access_log_on: bool = True,
    fast: list[Any] | None = None,
    debug: bool = False,
) -> list[Middleware]:
    """The middleware stack, outermost first (see the module docstring)."""
    stack = [Middleware(AccessLog, metrics=metrics, enabled=access_log_on)]
    if fast:
        stack.append(Middleware(FastRoutes, routes=list(fast), debug=debug))
    return stack


# -- errors -----------------------------------------------------------------------------------


def error_response(exc: LoopmlError) -> Response:
    """The one error shape, ``{"error", "field", "status"}``, with the headers it implies."""
    headers = {}
    retry = exc.details.get("retry_after")
    if retry is not None:
        headers["Retry-After"] = str(retry)
    if exc.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="loopml"'
    body = exc.to_dict()
    body.setdefault("field", None)
    return Response(dumps(body), status_code=exc.http_status, headers=headers, media_type=JSON)


class HTTPError(LoopmlError):
    """Starlette's routing errors (404 unknown path, 405 wrong method) in our shape."""

    def __init__(self, message: str, status: int, field: str) -> None:
        super().__init__(message, field=field)
        self.http_status = status


async def _loopml_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoopmlError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        err = HTTPError(
            f"{request.method} is not allowed on {request.url.path[:200]}; see the API "
            "reference for the methods of this route.",
            405,
            "method",
        )
    elif exc.status_code == 404:
        err = HTTPError(f"No route {request.url.path[:200]!r}.", 404, "path")
    else:
        err = HTTPError(str(exc.detail)[:200], exc.status_code, "request")
    return error_response(err)


def error_handlers(debug: bool = False) -> dict[Any, Any]:
    """Exception -> response for the app; a bug answers 500 in the same shape (no trace)."""

    async def _internal(request: Request, exc: Exception) -> Response:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        detail = f" ({type(exc).__name__}: {exc})" if debug else ""
        err = HTTPError(
            f"Internal server error{detail}. This is a bug in loopml; the server log has the "
            "details.",
            500,
            "server",
        )
        return error_response(err)

    return {LoopmlError: _loopml_error, HTTPException: _http_error, Exception: _internal}


# -- bodies -----------------------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (by Content-Length up front,
    and while streaming, for chunked bodies or lying headers)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequestError(
                "The Content-Length header is not a number.", field="content-length"
            )
        if int(declared) > limit:
            raise _too_large(limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The request body is larger than this server accepts ({limit} bytes, "
        "serve.max_body_bytes). Send fewer rows per request.",
        field="body",
    )


def require_json(request: Request) -> None:
    """415 unless the content type is JSON (a missing content type is read as JSON)."""
    ctype = request.headers.get("content-type")
    if ctype is None:
        return
    mime, _, rest = ctype.partition(";")
    mime = mime.strip().lower()
    if mime != JSON and not (mime.startswith("application/") and mime.endswith("+json")):
        raise UnsupportedMediaTypeError(
            "This route reads 'application/json'. Set the Content-Type header.",
            field="content-type",
        )
    charset = rest.strip().lower().replace(" ", "")
    if charset and charset not in ("charset=utf-8", "charset=utf8"):
        raise UnsupportedMediaTypeError("Only UTF-8 bodies are accepted.", field="content-type")
