"""``loopml.memory.release_memory`` gives freed memory back to the system: what pyarrow's
pool and glibc's heaps keep after a pass (the background process calls it after each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from tests._helpers.process import run_python

SCRIPT = """
import json, os
import numpy as np, pyarrow as pa, pyarrow.compute as pc
from loopml.memory import release_memory

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

out = {}
t = pa.table({"a": np.random.default_rng(0).random(8_000_000)})
doubled = pc.multiply(t["a"], 2)
del t, doubled
out["arrow_freed"] = rss(); release_memory(); out["arrow_released"] = rss()
# many blocks below glibc's mmap threshold: freed, they stay in the heap
blocks = [np.ones(2000) for _ in range(20_000)]
del blocks
out["heap_freed"] = rss(); release_memory(); out["heap_released"] = rss()
print(json.dumps(out))
"""


def test_release_memory_returns_what_pyarrow_and_glibc_keep():
    mb = run_python(SCRIPT)  # a fresh process: its resident memory, not pytest's
    print(mb)
    assert mb["arrow_freed"] - mb["arrow_released"] > 40, mb  # of 2 x 64 MB freed
    assert mb["heap_freed"] - mb["heap_released"] > 150, mb  # of 320 MB freed


def test_a_budget_is_spent_when_memory_grew_past_its_share_of_the_warmup_readings():
    from loopml.memory import Budget

    never = Budget(0.0)
    assert not never.spent() and never.baseline is None
    budget = Budget(0.25, warmup=2)
    assert not budget.spent(first=False) and budget.baseline is None  # not a first pass
    assert not budget.spent() and budget.baseline
    # the warm-up's second pass kept more: the baseline is the higher reading, not spent
    heavier = np.ones(int(budget.baseline * 0.3 * 2**20 / 8))  # +30%, every page touched
    assert not budget.spent(), str(budget)
    assert budget.baseline > budget.last * 0.99
    grown = np.ones(int(budget.baseline * 0.5 * 2**20 / 8))  # +50% over that
    assert budget.spent(), str(budget)
    assert "over its" in str(budget) and "first 2 passes" in str(budget)
    del grown, heavier


def test_the_monitor_memo_survives_an_export_and_a_restore():
    from loopml.monitor import changes

    key = ("/r", None, "sqlite:///x", "ep", "predictions", 60.0, 5.0, 604800.0)
    changes.forget()
    changes.remember(key, ["a.parquet:10", "b.parquet:20"], [0.0, 60.0])
    kept = json.loads(json.dumps(changes.export()))
    changes.forget()
    assert changes.last(key) is None
    changes.restore(kept)
    assert changes.last(key) == changes.Seen(
        frozenset({"a.parquet:10", "b.parquet:20"}), frozenset({0.0, 60.0})
    )
    changes.forget()


JEMALLOC = """
import json
import numpy as np, pyarrow as pa
from loopml.memory import use_jemalloc

name = use_jemalloc()
t = pa.table({"a": np.arange(1_000_000, dtype=np.float64)})
doubled = pa.compute.multiply(t["a"], 2)
print(json.dumps({"name": name, "held": pa.jemalloc_memory_pool().bytes_allocated()}))
"""


def test_the_processes_beside_the_server_allocate_arrow_memory_from_jemalloc():
    """What the background process and the compactor call at their start: Arrow's buffers
    come from jemalloc (its pass keeps ~50 MB less than under mimalloc: memory.use_jemalloc)."""
    out = run_python(JEMALLOC)
    assert out["name"] == "jemalloc"
    assert out["held"] >= 8_000_000  # the doubled column, at least


def test_a_child_is_lowered_in_priority_from_its_start_and_never_raised():
    """What the server does to the background process it just started (before its imports)."""
    from loopml.logs.compaction import lower_priority

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        own = os.getpriority(os.PRIO_PROCESS, 0)
        lower_priority(child.pid, min(19, own + 3))
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == min(19, own + 3)
        lower_priority(child.pid, own)  # a lower target leaves it where it is
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == min(19, own + 3)
    finally:
        child.kill()
        child.wait()
    lower_priority(child.pid, 19)  # gone: nothing to do, no error
