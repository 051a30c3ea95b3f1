"""API keys, roles and per-key rate limits for the HTTP API.

Keys live hashed in the store (:class:`loopml.store.keys.Keys`); a lookup there is a SQL
round trip, so answers are cached by the full key for ``ttl`` seconds (a revoked key stops
working within that time) and the hot path costs a dict lookup. On the event loop
(:meth:`Authenticator.acheck`) a cache miss runs the lookup in a worker thread, at most
``lookups`` at once, and one at a time per key: the requests that miss a key together (all
of a busy client's, each time its entry expires) wait for the same lookup. Valid and unknown keys live in two separate LRU caches of ``cache_size``
entries each: a client spraying random keys churns only the unknown-key cache and can never
evict a valid key; a string that is not shaped like a key is refused without a lookup. When
the store cannot be reached (a database restart), keys validated within ``stale_grace``
seconds keep working and other keys get a 503: serving goes on from what it knows.

Roles are ordered: viewer < predictor < labeller < deployer < admin; a route names the lowest
role it accepts. Rate limits are token buckets per key (``rate_per_s`` from the key's record,
else the server's default; ``burst`` tokens deep): a request over the limit gets 429 with
``Retry-After`` saying when one token will be back. A token bucket is four lines, so no
library is pulled in for it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loopml.errors import AuthError, ForbiddenError, RateLimitedError, UnavailableError
from loopml.serve.access.sessions import Sessions
from loopml.store.rows import KeyRow
from loopml.types import ROLES

log = logging.getLogger("loopml.serve")
RANK = {role: i for i, role in enumerate(ROLES)}
OPEN = "open"  # routes anyone may call (health, metrics)
_MAX_CACHE = 10_000
_KEY_SHAPE = re.compile(r"^lml_[0-9a-f]{8}_[A-Za-z0-9_-]{20,100}$")  # store.keys.Keys.create


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
    endpoints: frozenset[str] | None = None  # a scoped key's endpoints; None: every endpoint

    def require(self, endpoint: str | None) -> None:
        """403 unless this caller may use ``endpoint`` (a scoped key: one of its endpoints)."""
        if self.endpoints is None or endpoint in self.endpoints:
            return
        shown = "(none)" if endpoint is None else repr(endpoint[:64])
        raise ForbiddenError(
            f"Key {self.prefix} is limited to the endpoint(s) "
            f"{', '.join(sorted(self.endpoints))}; it cannot use endpoint {shown}. Use a key "
            f"for that endpoint (loopml keys create --role {self.role} --endpoint NAME).",
            field="endpoint",
        )

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
        lookup: Callable[[str], KeyRow | None],
        *,
        enabled: bool = True,
        ttl: float = 5.0,
        rate_per_s: float = 1000.0,
        burst: float = 2000.0,
        clock: Callable[[], float] = time.monotonic,
        cache_size: int = _MAX_CACHE,
        lookups: int = 4,
        lookup_id: Callable[[int], KeyRow | None] | None = None,
        session_secret: str | None = None,
        stale_grace: float = 900.0,
    ) -> None:
        self.lookup = lookup
        self.enabled = enabled
        self.ttl = ttl
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock
        self.cache_size = cache_size
        self.lookups = lookups
        self._valid: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._buckets: dict[int, TokenBucket] = {}
        self._gate: asyncio.Semaphore | None = None
        self._lookups: dict[str, asyncio.Future[Principal | None]] = {}  # key -> its lookup
        self.stale_grace = stale_grace
        self._warned = False
        # dashboard sessions (loopml.serve.access.sessions): a signed cookie naming a key by id
        self.sessions = (
            Sessions(lookup_id, secret=session_secret) if lookup_id is not None else None
        )

    def check(self, authorization: str | None, role: str) -> Principal:
        """The caller, if its key is valid, has at least ``role`` and is within its rate.
        A cache miss looks the key up here (blocking); on the event loop use :meth:`acheck`."""
        if not self.enabled:
            return ANONYMOUS_ADMIN
        return self._admit(self.authenticate(authorization), role)

    async def acheck(self, authorization: str | None, role: str) -> Principal:
        """:meth:`check` for the event loop: a cache miss is looked up in a worker thread."""
        if not self.enabled:
            return ANONYMOUS_ADMIN
        key = self._key(authorization)
        cached = self._cached(key)
        if cached is _MISS:
            lookup = self._lookups.get(key)
            if lookup is None:
                lookup = self._lookups[key] = asyncio.ensure_future(self._alookup(key))
                lookup.add_done_callback(lambda _: self._lookups.pop(key, None))
            try:  # shielded: a caller that goes away does not cancel the others' lookup
                cached = await asyncio.shield(lookup)
            except Exception as exc:  # the store is down: see _store_down
                return self._admit(self._store_down(key, exc), role)
        return self._admit(self._known(cached), role)

    async def _alookup(self, key: str) -> Principal | None:
        """Look ``key`` up in a worker thread (at most ``lookups`` at once) and cache it."""
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.lookups)
        async with self._gate:
            record = await asyncio.to_thread(self.lookup, key)
        return self._remember(key, record)

    async def acheck_session(self, token: str, role: str) -> Principal:
        """The caller behind a dashboard session cookie (see :mod:`loopml.serve.access.sessions`)."""
        if not self.enabled:
            return ANONYMOUS_ADMIN
        record = None
        if self.sessions is not None and self.sessions.key_id(token) is not None:
            if self._gate is None:
                self._gate = asyncio.Semaphore(self.lookups)
            async with self._gate:
                record = await asyncio.to_thread(self.sessions.record, token, self.ttl)
        principal = self._principal(record)
        if principal is None:
            raise AuthError(
                "The dashboard session has expired or its key was revoked. Enter an API key "
                "again at /login.",
                field="authorization",
            )
        return self._admit(principal, role)

    def issue_session(self, principal: Principal) -> str:
        """A session token for ``principal`` (a key checked just now)."""
        if self.sessions is None or principal.key_id is None:
            raise AuthError("This server issues no dashboard sessions.", field="key")
        return self.sessions.issue(principal.key_id, principal.prefix)

    def _admit(self, principal: Principal, role: str) -> Principal:
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
        key = self._key(authorization)
        cached = self._cached(key)
        if cached is _MISS:
            try:
                record = self.lookup(key)
            except Exception as exc:  # the store is down: see _store_down
                return self._store_down(key, exc)
            cached = self._remember(key, record)
        return self._known(cached)

    def _store_down(self, key: str, exc: Exception) -> Principal:
        """The key store cannot be asked: a key validated within ``stale_grace`` seconds keeps
        working (serving goes on while the database restarts); any other key gets a 503."""
        stale = self._valid.get(key)
        if stale is not None and stale[0] + self.stale_grace >= self.clock():
            if not self._warned:
                log.warning("the key store cannot be reached (%s); serving cached keys", exc)
                self._warned = True
            return stale[1]
        raise UnavailableError(
            "The API key store cannot be reached right now, and this key was not checked "
            "recently, so it cannot be verified. Retry in a moment.",
            field="authorization",
            retry_after=5,
        )

    def _key(self, authorization: str | None) -> str:
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
        return key

    def _cached(self, key: str) -> Principal | object | None:
        """The cached answer for ``key``: a Principal, None (unknown), or ``_MISS``."""
        if not _KEY_SHAPE.match(key):
            return None  # not shaped like a key: unknown without asking the store
        now = self.clock()
        hit = self._valid.get(key)
        if hit is not None:
            if hit[0] >= now:
                self._valid.move_to_end(key)
                return hit[1]
            if hit[0] + self.stale_grace < now:
                del self._valid[key]  # else kept: the fallback while the store is down
        until = self._unknown.get(key)
        if until is not None:
            if until >= now:
                return None
            del self._unknown[key]
        return _MISS

    def _remember(self, key: str, record: KeyRow | None) -> Principal | None:
        principal = self._principal(record)
        until = self.clock() + self.ttl
        if principal is None:
            self._valid.pop(key, None)  # revoked: no stale fallback either
            cache: OrderedDict[str, Any] = self._unknown
            cache[key] = until
        else:
            cache = self._valid
            cache[key] = (until, principal)
            self._warned = False
        cache.move_to_end(key)
        while len(cache) > self.cache_size:
            cache.popitem(last=False)
        return principal

    @staticmethod
    def _known(cached: Principal | object | None) -> Principal:
        if not isinstance(cached, Principal):
            raise AuthError(
                "The API key is unknown or revoked. Create a new one with "
                "'loopml keys create --role ROLE'.",
                field="authorization",
            )
        return cached

    def _principal(self, record: KeyRow | None) -> Principal | None:
        if record is None or record.get("role") not in RANK:
            return None
        kid = int(record["id"])
        rate = float(record.get("rate_per_s") or self.rate_per_s)
        bucket = self._buckets.get(kid)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[kid] = TokenBucket(rate, max(self.burst, 1.0))
        scope = record.get("endpoints")
        return Principal(
            kid,
            str(record["prefix"]),
            record["role"],
            RANK[record["role"]],
            bucket,
            None if scope is None else frozenset(scope),
        )

    def forget(self) -> None:
        """Drop cached keys (the next request of each key asks the store again)."""
        self._valid.clear()
        self._unknown.clear()
        if self.sessions is not None:
            self.sessions.forget()


_MISS = object()
