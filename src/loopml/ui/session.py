"""Who is looking: page requests authenticate like the API, with the same key and checks.

The browser's key entry (``/login``) sends the key once; the server checks it with the API's
:class:`~loopml.serve.access.auth.Authenticator` and answers with a signed session cookie
(:mod:`loopml.serve.access.sessions`: it names the key by id, never holds it; ``HttpOnly``,
``SameSite=Strict``, ``Secure`` over TLS or behind a TLS proxy). Pages and the JSON API's
actions accept that cookie with the key's role (deployer for promote/rollback/disable,
labeller for labels); nothing in the browser keeps the raw key. A cross-site page cannot use
the cookie: ``SameSite=Strict`` keeps it off cross-site requests, the API's state-changing
routes need a JSON content type (a CORS preflight this server never grants), and a
cookie-authenticated POST must come from the server's own origin.

Mounted in ``loopml serve``, the dashboard uses the serving app's own authenticator (found on
the parent app's ``state.runtime``), so ``--no-auth``, the key cache and revocation behave
exactly as on the API; standalone it builds one over the store's keys.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request

from loopml.errors import ForbiddenError
from loopml.serve.access.auth import RANK, Authenticator, Principal
from loopml.serve.access.scopes import redact_paths
from loopml.serve.access.sessions import COOKIE, MAX_AGE

COOKIE_MAX_AGE = MAX_AGE


def authenticator(request: Request) -> Authenticator:
    return request.scope.get("loopml.auth") or request.app.state.auth


async def page_principal(request: Request) -> Principal:
    """The caller of a page (viewer or higher): the ``Authorization`` header, else the
    session cookie."""
    auth = authenticator(request)
    header = request.headers.get("authorization")
    token = request.cookies.get(COOKIE)
    if header or not token:
        return await auth.acheck(header, "viewer")
    return await auth.acheck_session(token, "viewer")


def who(p: Principal, auth_on: bool) -> dict[str, Any]:
    return {"role": p.role, "prefix": p.prefix, "auth": auth_on}


# what a same-site path after login may hold: printable ASCII, no backslash, no space
_NEXT = re.compile(r"^/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?#]*$")
LOGIN_BODY_MAX = 4096  # a key is ~50 characters; nothing bigger is read without auth


def safe_next(target: str | None) -> str:
    """Only same-site paths after login, else ``/``.

    A WHATWG URL parser drops tabs and newlines anywhere and reads a backslash as a slash,
    so ``/\t/evil.example``, ``/\n/evil.example`` and ``/\\evil.example`` all become
    ``//evil.example`` (another site) in a browser: anything beyond printable ASCII without
    backslash or space is refused, as is ``//`` and ``scheme:``; so is a path that would turn
    into one of those if something decoded it once more (``/%09/evil.example``).
    """
    if not target or not _NEXT.match(target):
        return "/"
    decoded = unquote(target)
    if decoded.startswith("//") or "\\" in decoded or any(ord(ch) < 32 for ch in decoded):
        return "/"
    return target


class ParentAuth:
    """ASGI wrapper: remember the parent app's authenticator before the dashboard runs."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        parent = scope.get("app")
        runtime = getattr(getattr(parent, "state", None), "runtime", None)
        auth = getattr(runtime, "auth", None)
        if isinstance(auth, Authenticator):
            scope["loopml.auth"] = auth
        await self.app(scope, receive, send)


# -- scoped keys on the dashboard (the API's rule: loopml.serve.access.scopes) ------------------------


def check_request(request: Request, p: Principal) -> None:
    """Before a page is built: a scoped key asks only for its endpoints."""
    if p.endpoints is None:
        return
    name = request.path_params.get("name")
    if name is not None:
        p.require(name)
    wanted = request.query_params.get("endpoint")
    if wanted:
        p.require(wanted)


def scope_context(ctx: dict[str, Any], p: Principal, store: Any) -> dict[str, Any]:
    """After a page is built: drop (or refuse) what lies outside a scoped key's endpoints."""
    if p.endpoints is None:
        return ctx
    scope = p.endpoints
    page = ctx.get("page")
    if page == "overview":
        ctx["endpoints"] = [e for e in ctx.get("endpoints", []) if e.get("name") in scope]
    elif page == "decisions":
        ctx["decisions"] = [d for d in ctx.get("decisions", []) if d.get("endpoint") in scope]
        ctx["endpoints"] = [e for e in ctx.get("endpoints", []) if e in scope]
    elif page == "decision":
        p.require((ctx.get("decision") or {}).get("endpoint"))
    elif page == "window":
        p.require((ctx.get("window") or {}).get("endpoint"))
    elif page == "review":
        p.require(ctx.get("endpoint"))  # no ?endpoint=: the first endpoint, maybe not ours
        ctx["endpoints"] = [e for e in ctx.get("endpoints", []) if e in scope]
    elif page == "version":
        models = {r["model"] for r in store.endpoints.list() if r["name"] in scope}
        if (ctx.get("version") or {}).get("model") not in models:
            raise ForbiddenError(
                f"Key {p.prefix} is limited to the endpoint(s) {', '.join(sorted(scope))}; "
                "this version is not a version of their model.",
                field="version",
            )
    elif page == "endpoint":
        p.require(ctx.get("name"))
    return ctx


def scrub_page(text: str, p: Principal) -> str:
    """A page or JSON twin without filesystem paths, for a caller below admin."""
    return text if p.rank >= RANK["admin"] else redact_paths(text)
