"""Who is looking: page requests authenticate like the API, with the same key and checks.

The browser's key entry (``/login``) sends the key once; the server checks it with the API's
:class:`~loopml.serve.auth.Authenticator` and sets it as an ``HttpOnly``, ``SameSite=Strict``
cookie, so page GETs (viewer level) carry it without JavaScript being able to read it. The
page's scripts keep their own copy in ``sessionStorage`` and send it as
``Authorization: Bearer`` to the JSON API for actions, where the API's route table decides
the role (deployer for promote/rollback/disable, labeller for labels). The cookie never
authorises anything but reading pages: the API ignores cookies, so a forged cross-site
request cannot act (and ``SameSite=Strict`` keeps the cookie off cross-site requests anyway).

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
from loopml.serve.auth import RANK, Authenticator, Principal
from loopml.serve.scopes import redact_paths

COOKIE = "loopml_key"
COOKIE_MAX_AGE = 12 * 3600


def authenticator(request: Request) -> Authenticator:
    return request.scope.get("loopml.auth") or request.app.state.auth


def page_header(request: Request) -> str | None:
    """The caller's credentials: the ``Authorization`` header, else the key cookie."""
    header = request.headers.get("authorization")
    if not header:
        key = request.cookies.get(COOKIE)
        header = f"Bearer {key}" if key else None
    return header


def page_principal(request: Request) -> Principal:
    """The caller of a page (viewer or higher); blocking on a cache miss."""
    return authenticator(request).check(page_header(request), "viewer")


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


# -- scoped keys on the dashboard (the API's rule: loopml.serve.scopes) ------------------------


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
