"""``create_ui(cfg, store)``: the dashboard as an ASGI app (Starlette + Jinja2, server-rendered).

Every page has a JSON twin at the same path plus ``.json`` (``/versions/12`` and
``/versions/12.json``); both call the page's context builder in :mod:`loopml.ui.pages` and the
JSON twin returns exactly its dict, so the templates only format (Datasette's rule). Context
building (blocking SQL) and rendering run in a worker thread, off the event loop that serves
predictions. No CDN: the CSS and the chart script are ours, served from ``/static``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from loopml.config import Config
from loopml.errors import AuthError, LoopmlError, UsageError
from loopml.serve.access.auth import Authenticator
from loopml.serve.access.sessions import is_tls
from loopml.serve.http.middleware import cap_quoted, read_body
from loopml.store import Store
from loopml.ui import pages
from loopml.ui.formatting import FILTERS
from loopml.ui.pages.endpoint import DEFAULT_DAYS
from loopml.ui.pages.page_helpers import parse_int, parse_time
from loopml.ui.session import (
    COOKIE,
    COOKIE_MAX_AGE,
    LOGIN_BODY_MAX,
    ParentAuth,
    check_request,
    page_principal,
    safe_next,
    scope_context,
    scrub_page,
    who,
)

log = logging.getLogger("loopml.ui")
HERE = Path(__file__).parent
JSON_TYPE = "application/json"


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def dumps(ctx: Any) -> str:
    return json.dumps(ctx, default=str, allow_nan=False, separators=(",", ":"))


def _error(exc: LoopmlError, as_json: bool, env: Environment, path: str) -> Response:
    body = exc.to_dict()
    body.setdefault("field", None)
    body["error"] = cap_quoted(body["error"])  # never echo more than 64 characters of input
    if as_json:
        return Response(dumps(body), status_code=exc.http_status, media_type=JSON_TYPE)
    html = env.get_template("error.html").render(
        ctx={"page": "error", "title": f"Error {exc.http_status}", "error": body},
        who=None,
        path=path,
    )
    return HTMLResponse(html, status_code=exc.http_status)


def _wants_json(request: Request) -> bool:
    path = request.url.path
    accept = request.headers.get("accept", "")
    return path.endswith(".json") or path.startswith(("/v1/", "/v2/")) or "text/html" not in accept


Builder = Callable[[Store, Config, Request], dict[str, Any]]


def _page(template: str, build: Builder, *, as_json: bool) -> Callable[[Request], Any]:
    """A route that authenticates the viewer, builds the context and renders or dumps it."""

    async def endpoint(request: Request) -> Response:
        state = request.app.state
        try:
            principal = await page_principal(request)
        except AuthError as exc:
            if as_json:
                return _error(exc, True, state.env, request.url.path)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)
        viewer = who(principal, authenticator_on(request))

        def work() -> Response:
            check_request(request, principal)
            ctx = scope_context(build(state.store, state.cfg, request), principal, state.store)
            if as_json:
                return Response(scrub_page(dumps(ctx), principal), media_type=JSON_TYPE)
            html = state.env.get_template(template).render(
                ctx=ctx, who=viewer, path=request.url.path
            )
            return HTMLResponse(scrub_page(html, principal))

        try:
            return await asyncio.to_thread(work)
        except LoopmlError as exc:
            exc.message = scrub_page(exc.message, principal)
            return _error(exc, as_json, state.env, request.url.path)

    return endpoint


def authenticator_on(request: Request) -> bool:
    auth = request.scope.get("loopml.auth") or request.app.state.auth
    return bool(auth.enabled)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


# -- the context of each page from the request's path and query --------------------------------


def _overview(store: Store, cfg: Config, r: Request) -> dict[str, Any]:
    return pages.overview(store, cfg)


def _endpoint(store: Store, cfg: Config, r: Request) -> dict[str, Any]:
    q = r.query_params
    days = q.get("days")
    if days in (None, ""):
        span: float | None = DEFAULT_DAYS
    elif days == "all":
        span = None
    else:
        try:
            span = float(days)
        except ValueError:
            raise UsageError(
                f"'days' must be a number of days or 'all'. Got {days[:20]!r}.", field="days"
            ) from None
    return pages.endpoint(
        store,
        cfg,
        r.path_params["name"],
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
        days=span,
    )


def _window(store: Store, cfg: Config, r: Request) -> dict[str, Any]:
    return pages.window(store, cfg, r.path_params["id"])


def _version(store: Store, cfg: Config, r: Request) -> dict[str, Any]:
    return pages.version(store, cfg, r.path_params["id"])


def _decisions(store: Store, cfg: Config, r: Request) -> dict[str, Any]:
    q = r.query_params
    return pages.decisions(
        store,
        cfg,
        endpoint=q.get("endpoint") or None,
        actor=q.get("actor") or None,
        action=q.get("action") or None,
        since=parse_time(q.get("since"), "since"),
        until=parse_time(q.get("until"), "until"),
        limit=parse_int(q.get("limit"), "limit", 200),
    )


def _decision(store: Store, cfg: Config, r: Request) -> dict[str, Any]:
    return pages.decision(store, cfg, r.path_params["id"])


def _review(store: Store, cfg: Config, r: Request) -> dict[str, Any]:
    q = r.query_params
    days = q.get("days") or "7"
    try:
        d = float(days)
    except ValueError:
        raise UsageError(
            f"'days' must be a number of days. Got {days[:20]!r}.", field="days"
        ) from None
    if not 0 < d <= 366:
        raise UsageError("'days' must be in (0, 366].", field="days")
    return pages.review(
        store,
        cfg,
        endpoint=q.get("endpoint") or None,
        days=d,
        limit=parse_int(q.get("limit"), "limit", 50, hi=1000),
        since=parse_time(q.get("since"), "since"),
    )


PAGES: tuple[tuple[str, str, Builder], ...] = (
    # (path, template, builder); each path also answers with ".json"
    ("/endpoints/{name}", "endpoint.html", _endpoint),
    ("/windows/{id:int}", "window.html", _window),
    ("/versions/{id:int}", "version.html", _version),
    ("/decisions/{id:int}", "decision.html", _decision),
    ("/decisions", "decisions.html", _decisions),
    ("/review", "review.html", _review),
)


# -- key entry ---------------------------------------------------------------------------------


async def login_page(request: Request) -> Response:
    env = request.app.state.env
    nxt = safe_next(request.query_params.get("next"))
    html = env.get_template("login.html").render(
        ctx={"page": "login", "title": "Enter your API key", "next": nxt},
        who=None,
        path=request.url.path,
    )
    return HTMLResponse(html)


async def login(request: Request) -> Response:
    """``{"key": "..."}`` -> sets the page cookie if the key is valid (any role)."""
    try:
        if "application/json" not in request.headers.get("content-type", ""):
            raise UsageError('Send the key as JSON: {"key": "..."}.', field="key")
        body = await read_body(request, LOGIN_BODY_MAX, "the key entry's limit")
        try:
            doc = json.loads(body)
        except ValueError:
            raise UsageError("The body is not JSON.", field="key") from None
        key = doc.get("key") if isinstance(doc, dict) else None
        if not isinstance(key, str) or not key.strip():
            raise UsageError(
                "Enter an API key (create one with 'loopml keys create --role viewer').",
                field="key",
            )
        key = key.strip()
        auth = request.scope.get("loopml.auth") or request.app.state.auth
        principal = await auth.acheck(f"Bearer {key}", "viewer")
        resp = JSONResponse({"role": principal.role, "prefix": principal.prefix})
        if not auth.enabled:
            return resp  # no keys, no session: every page is open
        token = auth.issue_session(principal)
    except LoopmlError as exc:
        return _error(exc, True, request.app.state.env, request.url.path)
    resp.set_cookie(
        COOKIE,
        token,  # signed, names the key by id; never the key (loopml.serve.access.sessions)
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="strict",
        path="/",
        secure=is_tls(request.url.scheme, request.headers),
    )
    return resp


async def favicon(request: Request) -> Response:
    # browsers ask for it on pages without <link rel="icon"> (the JSON twins): no 404 noise
    return Response(status_code=204)


async def logout(request: Request) -> Response:
    resp = JSONResponse({"ok": True})
    resp.delete_cookie(COOKIE, path="/")
    return resp


def _routes() -> list[Any]:
    routes: list[Any] = [
        Route("/", _page("overview.html", _overview, as_json=False), methods=["GET"]),
        Route("/index.json", _page("overview.html", _overview, as_json=True), methods=["GET"]),
        Route("/.json", _page("overview.html", _overview, as_json=True), methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
    ]
    for path, template, build in PAGES:  # the .json route first: "{name}" would swallow ".json"
        routes.append(Route(f"{path}.json", _page(template, build, as_json=True), methods=["GET"]))
        routes.append(Route(path, _page(template, build, as_json=False), methods=["GET"]))
    routes.append(Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"))
    return routes


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    path = request.url.path
    api = path.startswith(("/v1/", "/v2/")) or path.endswith("/invocations")
    msg = (
        f"Method {request.method} is not allowed on {path!r}."
        if status != 404
        else f"No API route {request.method} {path!r} on this server."
        if api  # an API client's typo: not a dashboard page
        else f"No dashboard page at {path!r}. Start at / (the overview)."
    )
    err = LoopmlError(msg, field="path")
    err.http_status = status
    return _error(err, _wants_json(request), request.app.state.env, request.url.path)


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("dashboard page %s failed", request.url.path)
    err = LoopmlError("The dashboard failed to build this page; the server log has the details.")
    err.http_status = 500
    return _error(err, _wants_json(request), request.app.state.env, request.url.path)


def create_ui(cfg: Config, store: Store, *, auth: bool | None = None) -> Any:
    """The dashboard ASGI app over ``store``. ``auth`` defaults to ``cfg.serve.auth``; when
    mounted in ``loopml serve`` the serving app's authenticator is used instead."""
    app = Starlette(routes=_routes(), exception_handlers={HTTPException: _not_found, 500: _crash})
    app.state.cfg = cfg
    app.state.store = store
    app.state.env = environment()
    app.state.auth = Authenticator(
        store.keys.authenticate,
        enabled=cfg.serve.auth if auth is None else auth,
        rate_per_s=cfg.serve.rate_limit_per_s,
        burst=float(cfg.serve.rate_burst),
        lookup_id=store.keys.by_id,
        session_secret=cfg.serve.session_secret,
    )
    return ParentAuth(app)


def mount(cfg: Config) -> tuple[str, Any]:
    """The hook for ``loopml.server.MOUNTS``: the dashboard at ``/`` (API routes match first)."""
    return "/", create_ui(cfg, Store(cfg.store_url))


__all__ = ["create_ui", "mount"]
