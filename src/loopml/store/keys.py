"""API keys, stored hashed. A key is shown once, when created.

Keys are 32 random bytes, so a plain SHA-256 is enough (no password stretching needed);
lookup is by a public prefix and the digest is compared in constant time. A key may be scoped
to endpoints (``endpoints``: a list of names; ``None``: every endpoint); the serving app
applies the scope on every route (:mod:`loopml.serve.access.scopes`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any, cast

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine

from loopml.errors import NotFoundError, UsageError
from loopml.store import audit
from loopml.store.endpoints import check_endpoint_name
from loopml.store.rows import KeyRow
from loopml.store.tables import api_keys
from loopml.store.util import row_dict
from loopml.types import ROLES


def _record(r: Any) -> KeyRow:
    """A key's row without its hash."""
    d = row_dict(r)
    d.pop("hash")
    return cast(KeyRow, d)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Keys:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self,
        role: str,
        *,
        name: str = "",
        rate_per_s: float | None = None,
        endpoints: list[str] | None = None,
        actor: str = "cli",
    ) -> tuple[str, KeyRow]:
        """A new key with ``role`` (limited to ``endpoints`` when given); returns (the key, its
        record). The key is not stored."""
        if role not in ROLES:
            raise UsageError(f"Unknown role {role!r}; roles are {', '.join(ROLES)}.", field="role")
        scope = None
        if endpoints is not None:
            for e in endpoints:
                check_endpoint_name(e)
            scope = sorted(set(endpoints))
            if not scope:
                raise UsageError("A scoped key needs at least one endpoint.", field="endpoint")
        prefix = secrets.token_hex(4)
        key = f"lml_{prefix}_{secrets.token_urlsafe(32)}"
        with self.engine.begin() as conn:
            kid = conn.execute(
                insert(api_keys).values(
                    prefix=prefix,
                    hash=_digest(key),
                    role=role,
                    name=name or role,
                    rate_per_s=rate_per_s,
                    created_at=time.time(),
                    endpoints=scope,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            audit.record(
                conn,
                actor=actor,
                action="key:create",
                subject=f"key:{kid}",
                reason=f"API key {prefix} created with role {role}"
                + (f" for endpoints {', '.join(scope)}" if scope else ""),
                after={"role": role, "prefix": prefix, "endpoints": scope},
            )
        return key, self.get(int(kid))

    def get(self, key_id: int) -> KeyRow:
        with self.engine.connect() as conn:
            r = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if r is None:
            raise NotFoundError(f"No API key {key_id}.", field="key")
        return _record(r)

    def by_id(self, key_id: int) -> KeyRow | None:
        """The record of key ``key_id`` (revoked ones too), or None."""
        try:
            return self.get(key_id)
        except NotFoundError:
            return None

    def list(self) -> list[KeyRow]:
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(select(api_keys).order_by(api_keys.c.id))]

    def authenticate(self, key: str) -> KeyRow | None:
        """The key's record if ``key`` is valid and not revoked, else None."""
        parts = key.split("_")
        if len(parts) < 3 or parts[0] != "lml":
            return None
        with self.engine.connect() as conn:
            r = conn.execute(select(api_keys).where(api_keys.c.prefix == parts[1])).first()
        if r is None or r.revoked_at is not None or not hmac.compare_digest(r.hash, _digest(key)):
            return None
        return _record(r)

    def revoke(self, key_id: int, *, actor: str = "cli") -> None:
        with self.engine.begin() as conn:
            res = conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            if res.rowcount != 1:
                raise NotFoundError(
                    f"No active API key {key_id}. List keys with 'loopml keys list'."
                )
            audit.record(
                conn,
                actor=actor,
                action="key:revoke",
                subject=f"key:{key_id}",
                reason="API key revoked",
            )
