"""Dashboard sessions: a signed cookie that names a key, never the key itself.

``POST /login`` checks an API key once and sets ``loopml_session`` to
``base64url(key_id:prefix:expiry) . base64url(HMAC-SHA256(secret, that))``. The cookie is
``HttpOnly`` (page scripts cannot read it), ``SameSite=Strict`` and ``Secure`` when the
request came over TLS, directly or through a proxy that says so (``X-Forwarded-Proto``).
The raw key is not kept anywhere in the browser.

Each request with the cookie checks the signature and the expiry, then the key's record by
id (cached for ``ttl`` seconds like the API's keys): a revoked key ends its sessions within
that time. The secret is ``serve.session_secret`` (set it, e.g. from ``${VAR}``, when several
server processes share a dashboard behind one address); without one, each process draws a
random secret and its sessions end when it stops. Only a valid signature reaches the store,
so nobody can make the server look up ids at will.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from loopml.errors import UnavailableError
from loopml.store.rows import KeyRow

COOKIE = "loopml_session"
STALE_GRACE = 900.0  # seconds a checked key stays usable while the store cannot be reached
MAX_AGE = 12 * 3600
_CACHE = 1000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_tls(scheme: str, headers: Any) -> bool:
    """True when the browser talks TLS: here, or to a proxy in front (X-Forwarded-Proto)."""
    proto = (headers.get("x-forwarded-proto") or "").split(",")[0].strip().lower()
    return scheme == "https" or proto == "https"


class Sessions:
    """Issues and checks session tokens; ``lookup_id(key_id) -> record | None``."""

    def __init__(
        self,
        lookup_id: Callable[[int], KeyRow | None],
        *,
        secret: str | bytes | None = None,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        self.secret = secret or secrets.token_bytes(32)
        self.lookup_id = lookup_id
        self.max_age = max_age
        self.clock = clock
        self._records: OrderedDict[int, tuple[float, KeyRow | None]] = OrderedDict()

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self.secret, payload, hashlib.sha256).digest()

    def issue(self, key_id: int, prefix: str) -> str:
        """A token for the key ``key_id`` valid for ``max_age`` seconds."""
        payload = f"{key_id}:{prefix}:{int(self.clock() + self.max_age)}".encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def key_id(self, token: str) -> tuple[int, str] | None:
        """(key id, prefix) of a token with a valid signature that has not expired."""
        if not token or len(token) > 300 or token.count(".") != 1:
            return None
        head, sig = token.split(".")
        try:
            payload, given = _unb64(head), _unb64(sig)
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(self._sign(payload), given):
            return None
        try:
            kid, prefix, expiry = payload.decode().split(":")
            if int(expiry) < self.clock():
                return None
            return int(kid), prefix
        except ValueError:
            return None

    def record(self, token: str, ttl: float = 5.0) -> KeyRow | None:
        """The live key record behind ``token`` (blocking on a cache miss; records are cached
        ``ttl`` seconds), or None."""
        found = self.key_id(token)
        if found is None:
            return None
        kid, prefix = found
        now = time.monotonic()
        hit = self._records.get(kid)
        if hit is None or hit[0] < now:
            try:
                rec = self.lookup_id(kid)
            except Exception:  # the store is down: a recently seen key keeps its session
                if hit is not None and hit[0] + STALE_GRACE >= now:
                    return hit[1]
                raise UnavailableError(
                    "The API key store cannot be reached right now. Retry in a moment.",
                    field="authorization",
                    retry_after=5,
                ) from None
            if rec is not None and (rec.get("revoked_at") is not None or rec["prefix"] != prefix):
                rec = None
            hit = (now + ttl, rec)
            self._records[kid] = hit
            while len(self._records) > _CACHE:
                self._records.popitem(last=False)
        return hit[1]

    def forget(self) -> None:
        self._records.clear()
