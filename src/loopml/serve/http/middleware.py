"""Middleware, error responses and body reading: everything around the handlers.

The order is written down once, in :func:`build_middleware` (outermost first):

0. :class:`LoopbackOnly` — only with auth off: refuses requests whose ``Host`` or ``Origin``
   is not loopback (or configured), see :mod:`loopml.serve.access.origins`.
1. :class:`AccessLog` — times every request and queues one structured JSON line per request
   for the ``loopml.access`` logger, written by a thread off the event loop
   (:mod:`loopml.serve.http.accesslog`; uvicorn's own access log is off), and counts it by route
   template and status (never by raw path: junk URLs must not create metric series).
2. :class:`FastRoutes` — the prediction and label routes, called without Starlette's router.
3. Starlette's ``ServerErrorMiddleware`` (added by Starlette itself, inside 1) and its
   ``ExceptionMiddleware`` (innermost) turn exceptions into the one error shape through
   :func:`error_handlers`.

Authentication is not a middleware: each route names its role in the route table
(:mod:`loopml.serve.http.application`), so the table is the single place that says who may call what.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopml.errors import (
    BadRequestError,
    DataError,
    LoopmlError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from loopml.serve.access.origins import Hosts
from loopml.serve.http.accesslog import AccessLines, access_log
from loopml.serve.http.prometheus import Metrics
from loopml.serve.wire.protocols import dumps

log = logging.getLogger("loopml.serve")

JSON = "application/json"


class AccessLog:
    """Pure ASGI middleware: one JSON access-log line and one metric per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, enabled: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.enabled = enabled
        self.lines = AccessLines()

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
            self.metrics.count_http(template, status)
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


class LoopbackOnly:
    """Pure ASGI middleware: with auth off, 403 unless Host and Origin are loopback or allowed."""

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...] = ()) -> None:
        self.app = app
        self.hosts = Hosts(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            err = self.hosts.refusal(dict(scope.get("headers") or ()))
            if err is not None:
                await error_response(err)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class FastRoutes:
    """Pure ASGI middleware: the data-plane routes (predictions and labels), dispatched
    straight to their endpoints.

    Prediction is the one route that runs thousands of times a second (and labels follow
    predictions, at a tenth of their rate in the soak); Starlette's router
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
    auth_on: bool = True,
    allowed_hosts: tuple[str, ...] = (),
) -> list[Middleware]:
    """The middleware stack, outermost first (see the module docstring)."""
    stack = [] if auth_on else [Middleware(LoopbackOnly, allowed=allowed_hosts)]
    stack.append(Middleware(AccessLog, metrics=metrics, enabled=access_log_on))
    if fast:
        stack.append(Middleware(FastRoutes, routes=list(fast), debug=debug))
    return stack


# -- errors -----------------------------------------------------------------------------------


# A quoted run longer than ECHO characters in an error message is cut: messages quote what
# the client sent (a name, a path), and an answer must never echo more than that of it.
ECHO = 64
_QUOTED = re.compile(  # a quote opens after a space or bracket and closes before one
    rf"(?:(?<=^)|(?<=[\s(\[{{:=,]))(?:'([^'\n]{{{ECHO + 1},}}?)'|\"([^\"\n]{{{ECHO + 1},}}?)\")"
    r"(?=$|[\s)\]},.:;])"
)


def cap_quoted(message: str) -> str:
    """``message`` with every quoted run cut to ``ECHO`` characters (the last three '...')."""

    def cut(m: re.Match[str]) -> str:
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        q = m.group(0)[0]
        return f"{q}{inner[: ECHO - 3]}...{q}"

    return _QUOTED.sub(cut, message)


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
    body["error"] = cap_quoted(body["error"])
    field = body["field"]
    if isinstance(field, str) and len(field) > ECHO:
        body["field"] = field[: ECHO - 3] + "..."
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
        if isinstance(exc, OverflowError):  # a number no database column can hold: bad input
            return error_response(
                DataError(
                    "A number in the request is out of range (integers must fit in 64 bits).",
                    field="body" if request.method == "POST" else "path",
                )
            )
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


async def read_body(request: Request, limit: int, setting: str = "serve.max_body_bytes") -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (by Content-Length up front,
    and while streaming, for chunked bodies or lying headers); ``setting`` names the limit."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequestError(
                "The Content-Length header is not a number.", field="content-length"
            )
        if int(declared) > limit:
            raise _too_large(limit, setting)
    # the ASGI messages read directly: Starlette's Request.stream (an async generator) cost
    # ~4 us a request more, the most of any step of reading a one-row prediction body
    chunks = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, setting)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int, setting: str) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The request body is larger than this server accepts ({limit} bytes, "
        f"{setting}). Send a smaller body (fewer rows per request).",
        field="body",
    )


def require_json(request: Request, *, missing_ok: bool = True) -> None:
    """415 unless the content type is JSON. A missing content type is read as JSON only with
    ``missing_ok`` (prediction clients such as tritonclient send none); state-changing routes
    pass ``missing_ok=False``: a cross-site page can send a body without a content type, never
    with a JSON one (that needs a CORS preflight, which this server never grants)."""
    ctype = request.headers.get("content-type")
    if ctype is None:
        if missing_ok:
            return
        raise UnsupportedMediaTypeError(
            "This route changes state and reads 'application/json' only: set the header "
            "'Content-Type: application/json' (an empty object {} is a valid body).",
            field="content-type",
        )
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
