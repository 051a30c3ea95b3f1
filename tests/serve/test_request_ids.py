"""Request ids: UUIDv7 strings, unique within a process and across a fork (the random bytes
are read from the OS in blocks; a forked child must not reuse its parent's block)."""

from __future__ import annotations

import os
import re
import uuid

from loopml.serve.wire.ids import new_request_ids

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_ids_are_uuid7_and_unique() -> None:
    ids = [i for _ in range(2000) for i in new_request_ids(7)] + new_request_ids(20_000)
    assert len(set(ids)) == len(ids)
    assert all(UUID7.match(i) for i in ids)
    assert {uuid.UUID(i).version for i in ids[:100]} == {7}


def test_a_forked_child_draws_other_random_bits_than_its_parent() -> None:
    new_request_ids(1)  # the parent holds a block of random bytes now
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then exit without running pytest's teardown
        os.write(w, ",".join(new_request_ids(50)).encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        child = f.read().split(",")
    mine = new_request_ids(50)
    assert len(child) == 50
    # the time bits may match (same millisecond); the 74 random bits must not
    assert not {c[14:] for c in child} & {m[14:] for m in mine}
