"""The request ids the prediction log wrote last, each with its endpoint, in about 20 bytes an id.

:meth:`loopml.logs.predlog.PredictionLog.known_request_ids` checks a label's request id here
before reading the log. A request id is a lowercase UUID string
(:mod:`loopml.serve.wire.ids`); it is kept as its 16 bytes (NumPy ``S16``, compared bytewise)
and its endpoint as a ``uint16`` index into a small table: 18 bytes an id. The newest ids
wait in a dict of at most ``chunk`` ids (~120 bytes each, ~2 MB); a full one is frozen into
sorted arrays, looked up by ``np.searchsorted``, and the oldest frozen chunk is dropped whole
once the newer ones hold ``capacity`` ids, so eviction costs one chunk, never a scan of all.
A million ids take ~20 MB (a dict of strings took ~150 MB).

The frozen chunks' arrays are allocated, and written, when the map is made: a ring of
slots that a frozen chunk fills and an evicted one frees. So the map costs no allocation
after that, and a server's resident memory at its start already holds it: in the issue 14
soak (1,290 req/s) the serving process grew ~1.3 MB a minute for the 13 minutes the map
took to fill, which looked like a leak.

Hand-written: no well-kept library offers a compact, bounded, first-in-first-out map of
128-bit keys (``cachetools`` and ``lru-dict`` hold a Python object an entry).
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterable, Sequence

import numpy as np

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MAX_ENDPOINTS = 1 << 16
_STR_BYTES = sys.getsizeof("0" * 36)  # one id of the mutable chunk, held as a str


def _uuid_keys(ids: Sequence[str]) -> np.ndarray:
    """The 16-byte keys (``S16``) of ``ids``, lowercase UUID strings all."""
    return np.frombuffer(bytes.fromhex("".join(ids).replace("-", "")), "S16")


class RecentIds:
    """Maps the last ``capacity`` request ids inserted to their endpoint.

    Guarantee: an id inserted within the last ``capacity`` insertions (each id of each
    :meth:`insert` counts, repeats included) is found, with the endpoint it was inserted
    with last; an id never inserted, or not a lowercase UUID string, is never found. At
    most ``capacity + chunk - 1`` ids are held (``chunk`` is at most ``capacity``), and
    ids leave oldest chunk first. Safe to call from several threads.
    """

    def __init__(self, capacity: int, chunk: int = 16_384) -> None:
        if capacity < 0 or chunk < 1:
            raise ValueError(
                f"RecentIds needs capacity >= 0 and chunk >= 1 ids; got capacity={capacity}, "
                f"chunk={chunk}. Pass capacity=0 to remember no ids."
            )
        self.capacity = capacity
        self.chunk = max(1, min(chunk, capacity))
        self._lock = threading.Lock()
        self._endpoints: list[str] = []
        self._endpoint_index: dict[str, int] = {}
        self._new: dict[str, int] = {}  # the mutable chunk: id -> endpoint index
        # the ring: a slot per frozen chunk (sorted keys, their endpoint indexes), one more
        # for the chunk frozen before the oldest is evicted; written now, so resident
        slots = -(-capacity // self.chunk) + 1 if capacity else 0
        self._keys = np.full((slots, self.chunk), b"\xff", "S16")
        self._eps = np.ones((slots, self.chunk), np.uint16)
        self._free = list(range(slots))
        self._frozen: list[int] = []  # slots of the frozen chunks, oldest first
        self._ends = np.empty((0, 2), "S16")  # each frozen chunk's first and last key

    def __len__(self) -> int:
        return len(self._frozen) * self.chunk + len(self._new)

    @property
    def nbytes(self) -> int:
        """Bytes held: the ring's arrays exactly, the mutable chunk estimated (dict + strs)."""
        new = self._new
        return self._keys.nbytes + self._eps.nbytes + sys.getsizeof(new) + len(new) * _STR_BYTES

    def insert(self, request_ids: Iterable[str], endpoint: str) -> None:
        """Remember ``request_ids`` as ``endpoint``'s (ids that are not UUIDs are skipped)."""
        if self.capacity == 0:
            return
        with self._lock:
            index = self._endpoint_index.get(endpoint)
            if index is None:
                if len(self._endpoints) == _MAX_ENDPOINTS:
                    return  # not remembered: known_request_ids finds them in the log
                index = self._endpoint_index[endpoint] = len(self._endpoints)
                self._endpoints.append(endpoint)
            for rid in request_ids:
                if _UUID.fullmatch(rid):
                    self._new[rid] = index
                    if len(self._new) == self.chunk:
                        self._freeze()
            self._evict()

    def _freeze(self) -> None:
        keys = _uuid_keys(list(self._new))
        order = np.argsort(keys)
        endpoints = np.fromiter(self._new.values(), np.uint16, len(keys))
        slot = self._free.pop()
        self._keys[slot] = keys[order]
        self._eps[slot] = endpoints[order]
        self._frozen.append(slot)
        ends = np.array([[self._keys[slot, 0], self._keys[slot, -1]]], "S16")
        self._ends = np.concatenate([self._ends, ends])
        self._new = {}
        self._evict()

    def _evict(self) -> None:
        # the oldest chunks whose newer ones still hold `capacity` ids
        drop = min(len(self._frozen), max(0, (len(self) - self.capacity) // self.chunk))
        if drop:
            self._free += self._frozen[:drop]
            del self._frozen[:drop]
            self._ends = self._ends[drop:]

    def lookup(self, request_ids: Iterable[str]) -> dict[str, str]:
        """The ids of ``request_ids`` held here, mapped to their endpoint."""
        found: dict[str, str] = {}
        with self._lock:
            names, new = self._endpoints, self._new
            rest: list[str] = []
            for rid in request_ids:
                index = new.get(rid)
                if index is None:
                    rest.append(rid)
                else:
                    found[rid] = names[index]
            if not rest or not self._frozen:
                return found
            pos = np.array([i for i, rid in enumerate(rest) if _UUID.fullmatch(rid)], np.intp)
            keys = _uuid_keys([rest[i] for i in pos])
            # (id, chunk): may the chunk hold the id? Chunks rarely overlap: ids grow with time
            near = (keys[:, None] >= self._ends[:, 0]) & (keys[:, None] <= self._ends[:, 1])
            for c in np.flatnonzero(near.any(axis=0))[::-1]:  # newest chunk first
                slot = self._frozen[c]
                sorted_keys, endpoints = self._keys[slot], self._eps[slot]
                rows = np.flatnonzero(near[:, c])
                at = np.searchsorted(sorted_keys, keys[rows])  # < len: the key <= the last
                hit = sorted_keys[at] == keys[rows]
                for i, e in zip(pos[rows[hit]].tolist(), endpoints[at[hit]].tolist(), strict=True):
                    found[rest[i]] = names[e]
                near[rows[hit]] = False  # found in a newer chunk than the rest
        return found

    def clear(self) -> None:
        with self._lock:
            self._new = {}
            self._free += self._frozen
            self._frozen = []
            self._ends = np.empty((0, 2), "S16")
