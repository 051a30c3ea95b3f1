"""API keys, roles and per-key rate limits for the HTTP API.

Keys live hashed in the store (:class:`loopml.store.keys.Keys`); a lookup there is a SQL
round trip, so answers are cached by the full key for ``ttl`` seconds (a revoked key stops
working within that time) and the hot path costs a dict lookup. Unknown keys are cached too,
so a client hammering with a bad key does not reach the database on every request.

Roles are ordered: viewer < predictor < labeller < deployer < admin; a route names the lowest
role it accepts. Rate limits are token buckets per key (``rate_per_s`` from the key's record,
else the server's default; ``burst`` tokens deep): a request over the limit gets 429 with
``Retry-After`` saying when one token will be back. A token bucket is four lines, so no
library is pulled in for it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loopml.errors import AuthError, ForbiddenError, RateLimitedError
from loopml.types import ROLES

RANK = {role: i for i, role in enumerate(ROLES)}
OPEN = "open"  # routes anyone may call (health, metrics)
_MAX_CACHE = 10_000


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored."""

    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, now: float) -> float:
        """Take one token; 0.0 if granted, else the seconds until one is available."""
        if self.tokens < 0:
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass(slots=True)
class Principal:
    """Who is calling: the key's id, public prefix and role."""

    key_id: int | None
    prefix: str
    role: str
    rank: int
    bucket: TokenBucket | None = field(default=None, repr=False)

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"key:{self.prefix}" if self.key_id is not None else self.prefix


ANONYMOUS_ADMIN = Principal(None, "anonymous", "admin", RANK["admin"])


class Authenticator:
    """Checks ``Authorization: Bearer <key>`` headers against the store's keys.

    ``lookup(key) -> record | None`` is ``Store.keys.authenticate``. With ``enabled=False``
    every caller is an anonymous admin (``loopml serve --no-auth``), not rate limited.
    """

    def __init__(
        self,
        lookup: Callable[[str], dict[str, Any] | None],
        *,
        enabled: bool = True,
        ttl: float = 5.0,
        rate_per_s: float = 1000.0,
        burst: float = 2000.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookup = lookup
        self.enabled = enabled
        self.ttl = ttl
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._buckets: dict[int, TokenBucket] = {}

    def check(self, authorization: str | None, role: str) -> Principal:
        """The caller, if its key is valid, has at least ``role`` and is within its rate."""
        if not self.enabled:
            return ANONYMOUS_ADMIN
        principal = self.authenticate(authorization)
        if principal.rank < RANK[role]:
            raise ForbiddenError(
                f"This route needs the role {role!r} or higher; key {principal.prefix} has "
                f"{principal.role!r}. Use a key with that role (loopml keys create --role {role}).",
                field="authorization",
            )
        bucket = principal.bucket
        if bucket is not None:
            wait = bucket.take(self.clock())
            if wait:
                raise RateLimitedError(
                    f"Key {principal.prefix} is over its rate limit ({bucket.rate:g} requests/s, "
                    f"bursts of {bucket.burst:g}). Retry after the time in Retry-After.",
                    field="authorization",
                    retry_after=max(1, math.ceil(wait)),
                )
        return principal

    def authenticate(self, authorization: str | None) -> Principal:
        """The :class:`Principal` of a ``Bearer`` header; :class:`AuthError` if there is none."""
        if not authorization:
            raise AuthError(
                "This route needs an API key: send 'Authorization: Bearer <key>'. Create a key "
                "with 'loopml keys create --role ROLE'.",
                field="authorization",
            )
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise AuthError(
                "The Authorization header must be 'Bearer <key>'.", field="authorization"
            )
        now = self.clock()
        hit = self._cache.get(key)
        if hit is None or hit[0] < now:
            principal = self._principal(self.lookup(key)) if len(key) <= 256 else None
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            self._cache[key] = (now + self.ttl, principal)
        else:
            principal = hit[1]
        if principal is None:
            raise AuthError(
                "The API key is unknown or revoked. Create a new one with "
                "'loopml keys create --role ROLE'.",
                field="authorization",
            )
        return principal

    def _principal(self, record: dict[str, Any] | None) -> Principal | None:
        if record is None or record.get("role") not in RANK:
            return None
        kid = int(record["id"])
        rate = float(record.get("rate_per_s") or self.rate_per_s)
        bucket = self._buckets.get(kid)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[kid] = TokenBucket(rate, max(self.burst, 1.0))
        return Principal(kid, str(record["prefix"]), record["role"], RANK[record["role"]], bucket)

    def forget(self) -> None:
        """Drop cached keys (the next request of each key asks the store again)."""
        self._cache.clear()
