"""RecentIds: its guarantee against a plain-dict oracle (hypothesis), and its size."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.logs.recent_ids import RecentIds
from loopml.serve.wire.ids import new_request_ids
from tests._helpers.process import run_python

POOL = new_request_ids(12)
MALFORMED = [
    "nope",
    "",
    POOL[0].upper(),
    POOL[1][:-1] + "g",
    POOL[2] + "\n",
    POOL[3].replace("-", "_"),
    POOL[4].replace("-", ""),
    "é" * 36,
]
ALL = POOL + MALFORMED

inserts = st.lists(
    st.tuples(st.lists(st.sampled_from(ALL), max_size=6), st.sampled_from(["a", "b", "c"])),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(inserts=inserts, capacity=st.integers(0, 12), chunk=st.integers(1, 5))
def test_the_guarantee_against_a_dict(inserts, capacity, chunk):
    recent = RecentIds(capacity, chunk=chunk)
    events: list[tuple[str, str]] = []  # every UUID inserted, in order, repeats included
    for ids, endpoint in inserts:
        recent.insert(ids, endpoint)
        events += [(rid, endpoint) for rid in ids if rid in POOL]
        oracle = dict(events)  # the endpoint each id was inserted with last
        found = recent.lookup(ALL)
        # the last `capacity` insertions are found, with their last endpoint
        assert {rid for rid, _ in events[len(events) - capacity :]} <= found.keys()
        assert found.keys() <= oracle.keys()  # never one not inserted, nor a malformed one
        assert all(oracle[rid] == ep for rid, ep in found.items())  # never a stale endpoint
        # first in, first out: once an id is found, so is every id inserted after it last
        last = {rid: i for i, (rid, _) in enumerate(events)}
        oldest = min((last[rid] for rid in found), default=len(events))
        assert {rid for rid, _ in events[oldest:]} <= found.keys()
        assert len(recent) <= capacity + recent.chunk - 1
        assert recent.chunk <= max(capacity, 1)


def test_the_newest_endpoint_wins_across_chunks_and_clear_forgets():
    ids = new_request_ids(10)
    recent = RecentIds(100, chunk=4)
    recent.insert(ids, "a")
    recent.insert(ids[:2], "b")  # ids[:2] now in two chunks, 'b' the newer
    assert recent.lookup(ids) == {**dict.fromkeys(ids, "a"), **dict.fromkeys(ids[:2], "b")}
    recent.clear()
    assert recent.lookup(ids) == {} and len(recent) == 0


def test_a_capacity_below_zero_is_refused():
    with pytest.raises(ValueError, match="capacity=0 to remember no ids"):
        RecentIds(-1)


def test_a_million_ids_take_less_than_40_mb():
    """Regression: a dict of id strings took ~120 MB for a million ids (and ~150 MB in a server)."""
    blob = "".join(new_request_ids(1_000_000))  # made before tracing; sliced fresh below
    tracemalloc.start()
    try:
        recent = RecentIds(1_000_000)
        for start in range(0, len(blob), 36_000):  # requests of 1,000 ids
            ids = [blob[i : i + 36] for i in range(start, start + 36_000, 36)]
            recent.insert(ids, "".join(["cred", "it"]))  # a new str a request, as from a route
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(recent) == 1_000_000
    assert held < 40e6, f"{held / 1e6:.1f} MB for a million ids"
    assert abs(recent.nbytes - held) < 0.1 * held  # nbytes tells the size
    assert recent.lookup([blob[:36], blob[-36:]]) == {blob[:36]: "credit", blob[-36:]: "credit"}


RESIDENT = """
import json, os
from loopml.logs.recent_ids import RecentIds
from loopml.serve.wire.ids import new_request_ids

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

blob = new_request_ids(1_200_000)
start = rss()
recent = RecentIds(1_000_000)
made = rss()
for i in range(0, len(blob), 1_000):
    recent.insert(blob[i : i + 1_000], "credit")
print(json.dumps({"made": made - start, "filled": rss() - made}))
"""


def test_the_map_is_resident_when_made_and_does_not_grow_as_it_fills():
    """What a server's memory shows: the map's ~18 MB at its start, not over the minutes it
    takes to fill (which read as a leak in the issue 14 soak)."""
    mb = run_python(RESIDENT)
    assert mb["made"] > 15, mb  # the ring's 18 MB, written when made
    assert mb["filled"] < 6, mb  # then only the mutable chunk's dict (~2-3 MB)
