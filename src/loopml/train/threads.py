"""Thread limits for the compute of a run (training, prediction, gates that retrain).

scikit-learn's histogram gradient boosting and NumPy's BLAS start one OpenMP/BLAS thread per
core. On a machine whose cores are busy with other work, those threads spin waiting for each
other: the issue's measurement was 88-98 s per `loopml run` by default against 8-10 s with
``OMP_NUM_THREADS=1`` on a busy two-core box. ``model.threads`` (default 1) caps them with
threadpoolctl for the whole run, whoever starts it (``loopml run``, the controller's retraining
inside ``loopml serve``, the demo), and the run records the limit and what the libraries
reported (``runs.details["threads"]``).

Measured on this project's 2-core machine while other jobs kept it busy (load average 9-16;
the employment example, 69k rows, ``loopml run``; see ``THREADS_MEASURED``): with
``threads: 1`` training took 7.9 and 11.8 s (17.7 and 26.1 s wall); with the libraries' default
(2 threads) 107.7 and 116.5 s (122.3 and 142.0 s wall); ``threads: 2`` 137.5 s. One thread is
10x faster on a busy box and loses at most the parallel speed-up on an idle one, so it is the
default; set ``model.threads`` higher (or ``null``) on a machine with cores to spare.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

#: (threads setting, seconds training, seconds wall) per measured run, in the order run
THREADS_MEASURED = (
    (1, 7.92, 17.71),
    (None, 107.71, 122.26),
    (2, 137.54, 154.28),
    (1, 11.83, 26.12),
    (None, 116.50, 142.00),
)


@contextlib.contextmanager
def thread_limits(limit: int | None) -> Iterator[dict[str, Any]]:
    """Cap BLAS/OpenMP threads at ``limit`` (None: no cap) while the block runs; yields what
    the run records: ``{"limit", "libraries": [{"api", "internal_api", "num_threads"}]}``."""
    from threadpoolctl import threadpool_info, threadpool_limits

    record: dict[str, Any] = {"limit": limit}
    if limit is None:
        record["libraries"] = _summary(threadpool_info())
        yield record
        return
    with threadpool_limits(limits=limit):
        record["libraries"] = _summary(threadpool_info())
        yield record


def _summary(info: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen = []
    for lib in info:
        row = {k: lib.get(k) for k in ("user_api", "internal_api", "num_threads")}
        if row not in seen:
            seen.append(row)
    return seen
