"""Who may address a server that runs without API keys (``loopml serve --no-auth``).

Without keys, the only thing between a web page and the API is the browser's same-origin
policy, and two holes go around it: a cross-site "simple" request (a form post, or a
``fetch`` with no content type, sent without a CORS preflight) and DNS rebinding (the
attacker's name resolves to 127.0.0.1, so the page is "same-origin" with the server). Both
carry a name that is not ours: the ``Origin`` header of the first, the ``Host`` header of the
second. So, with auth off, the serving app (:class:`loopml.serve.http.middleware.LoopbackOnly`) answers 403 unless ``Host`` (always) and
``Origin`` (when sent) name a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``) or
one listed in ``serve.allowed_hosts``. Names are compared as written, never resolved: a
rebinding name resolves to 127.0.0.1 by design.

With auth on, a key travels in ``Authorization``, which no cross-site request can set without
a preflight the server never grants; the state-changing routes also require a JSON content
type (:func:`loopml.serve.http.application.guard`), which a cross-site form cannot send.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from loopml.errors import ForbiddenError

_ECHO = 64


def host_name(host: str) -> str:
    """The name in a ``Host`` header or URL authority, without port or brackets, lowercased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def is_loopback_name(name: str) -> bool:
    """``localhost`` (and ``*.localhost``, RFC 6761) or a loopback IP literal; no DNS."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Hosts:
    """The names a server without auth answers to: loopback, plus ``allowed``."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = {host_name(urlsplit(a).netloc if "://" in a else a) for a in allowed}

    def _ok(self, name: str) -> bool:
        return is_loopback_name(name) or name in self.allowed

    def refusal(self, headers: dict[bytes, bytes]) -> ForbiddenError | None:
        """Why a request with these (lowercased, raw) headers is refused, or None."""
        host = headers.get(b"host", b"").decode("latin-1")
        if not self._ok(host_name(host)):
            return ForbiddenError(
                f"This server runs without API keys (--no-auth) and answers only requests "
                f"addressed to a loopback host; Host {host[:_ECHO]!r} is not one (a DNS "
                "rebinding attack looks like this). Call it as 127.0.0.1 or localhost, or list "
                "the name in serve.allowed_hosts in loopml.yaml.",
                field="host",
            )
        origin = headers.get(b"origin")
        if origin is not None:
            text = origin.decode("latin-1")
            netloc = urlsplit(text).netloc if "://" in text else ""
            if not netloc or not self._ok(host_name(netloc)):
                return ForbiddenError(
                    f"This server runs without API keys (--no-auth) and refuses requests from "
                    f"web pages of other sites; Origin {text[:_ECHO]!r} is not a loopback "
                    "origin. List it in serve.allowed_hosts in loopml.yaml if it is yours.",
                    field="origin",
                )
        return None
