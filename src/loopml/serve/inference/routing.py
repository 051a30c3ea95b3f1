"""Per-endpoint traffic: champion, optional canary, optional shadows.

A :class:`TrafficTable` is immutable and precomputes everything ``route`` needs, so the hot
path reads one attribute and does one hash or one ``random()``. :class:`Router` swaps the
whole table by a reference assignment (atomic under the GIL): a request routes on the table
it read, and a change (deploy, rollout step, kill switch) applies from the next request on,
without locks on the hot path. Writers serialise among themselves with a lock.

Canary assignment with an entity key is sticky: ``blake2b(endpoint, canary, key) mod 10000
< weight * 100``. Raising the weight keeps every key already on the canary there (the
buckets below the old threshold stay below the new one); a new canary version draws a new
sample of keys. Without a key, each request draws ``random()``.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass, field, replace
from typing import Literal

from loopml.errors import UnavailableError, UsageError

RouteRole = Literal["champion", "canary", "shadow"]

_BUCKETS = 10_000


@dataclass(frozen=True)
class TrafficTable:
    """Who answers an endpoint's requests.

    ``canary_weight`` is a percentage (0-100) of requests; each shadow is ``(version,
    fraction)`` with ``fraction`` in (0, 1] of requests mirrored to it. ``previous`` lists
    earlier champions, newest first: the fallback when the champion is disabled.
    """

    endpoint: str
    champion: int | None
    canary: int | None = None
    canary_weight: float = 0.0
    shadows: tuple[tuple[int, float], ...] = ()
    previous: tuple[int, ...] = ()
    disabled: frozenset[int] = frozenset()
    # why versions are off (the kill switch's who, when and why), for the 503 when none is left
    notes: tuple[str, ...] = field(default=(), compare=False)
    _serving: int | None = field(init=False, repr=False, compare=False, default=None)
    _threshold: int = field(init=False, repr=False, compare=False, default=0)
    _salt: bytes = field(init=False, repr=False, compare=False, default=b"")
    _shadow_plan: tuple[tuple[int, float], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.canary_weight <= 100.0:
            raise UsageError(
                f"The canary weight of endpoint {self.endpoint!r} must be a percentage between "
                f"0 and 100. Got {self.canary_weight} instead.",
                field="canary_weight",
            )
        for version, fraction in self.shadows:
            if not 0.0 < fraction <= 1.0:
                raise UsageError(
                    f"Shadow version {version} of endpoint {self.endpoint!r} must mirror a "
                    f"fraction in (0, 1] of traffic. Got {fraction} instead.",
                    field="shadows",
                )
        off = self.disabled
        candidates = ((self.champion,) if self.champion is not None else ()) + self.previous
        serving = next((v for v in candidates if v not in off), None)
        canary = self.canary
        threshold = 0
        if canary is not None and canary not in off and canary != serving:
            threshold = round(self.canary_weight * _BUCKETS / 100)
        set_ = object.__setattr__
        set_(self, "_serving", serving)
        set_(self, "_threshold", threshold)
        set_(self, "_salt", f"{self.endpoint}\x00{canary}\x00".encode())
        set_(self, "_shadow_plan", tuple((v, f) for v, f in self.shadows if v not in off))

    @property
    def serving(self) -> int | None:
        """The version answering the non-canary share, after kill-switch fallback."""
        return self._serving

    def route(self, entity_key: str | None = None) -> tuple[int, RouteRole]:
        """Pick the version that answers this request, and its role."""
        serving = self._serving
        if serving is None:
            raise UnavailableError(
                self._unavailable_message(), field="endpoint", endpoint=self.endpoint
            )
        if self._threshold:
            if entity_key is None:
                hit = random.random() * _BUCKETS < self._threshold
            else:
                digest = hashlib.blake2b(self._salt + entity_key.encode(), digest_size=8).digest()
                hit = int.from_bytes(digest, "little") % _BUCKETS < self._threshold
            if hit:
                return self.canary, "canary"  # type: ignore[return-value]
        return serving, "champion"

    def shadow_versions(self) -> tuple[int, ...]:
        """The shadow versions this request is mirrored to (drawn per request)."""
        plan = self._shadow_plan
        if not plan:
            return ()
        return tuple(v for v, f in plan if f >= 1.0 or random.random() < f)

    def versions(self) -> frozenset[int]:
        """Every enabled version this table can send traffic to (to load and warm)."""
        out = {v for v, _ in self._shadow_plan}
        if self._serving is not None:
            out.add(self._serving)
        if self._threshold:
            out.add(self.canary)  # type: ignore[arg-type]
        return frozenset(out)

    def disable(self, version: int, note: str | None = None) -> TrafficTable:
        """A copy with ``version`` switched off (the kill switch); ``note`` says why."""
        notes = self.notes + ((note,) if note else ())
        return replace(self, disabled=self.disabled | {version}, notes=notes)

    def enable(self, version: int) -> TrafficTable:
        return replace(self, disabled=self.disabled - {version})

    def _unavailable_message(self) -> str:
        if self.notes:
            return (
                f"Endpoint {self.endpoint!r} has no version to answer with: "
                f"{'; '.join(self.notes)}. Deploy another version, or an admin can re-enable "
                "it with 'loopml enable VERSION'."
            )
        if self.champion is None:
            return (
                f"Endpoint {self.endpoint!r} has no champion version yet. Deploy one with "
                f"'loopml deploy {self.endpoint} VERSION'."
            )
        return (
            f"Every version that could answer endpoint {self.endpoint!r} is disabled "
            f"(champion {self.champion}, earlier champions {list(self.previous) or 'none'}). "
            f"Deploy or re-enable a version with 'loopml deploy {self.endpoint} VERSION'."
        )


class Router:
    """Holds an endpoint's current :class:`TrafficTable`; readers never lock."""

    def __init__(self, table: TrafficTable) -> None:
        self.table = table
        self._write_lock = threading.Lock()

    def swap(self, table: TrafficTable) -> TrafficTable:
        """Install ``table``; returns the one it replaced."""
        with self._write_lock:
            old, self.table = self.table, table
        return old

    def disable(self, version: int, note: str | None = None) -> TrafficTable:
        """Stop sending traffic to ``version`` from the next request on."""
        with self._write_lock:
            self.table = self.table.disable(version, note)
            return self.table

    def enable(self, version: int) -> TrafficTable:
        with self._write_lock:
            self.table = self.table.enable(version)
            return self.table
