"""Helper for the crash test: append durably at concurrency 16 and print each acked id."""

from __future__ import annotations

import asyncio
import sys

import numpy as np

from loopml.logs.predlog import PredictionLog
from loopml.serve.wire.ids import new_request_ids


async def main(root: str) -> None:
    log = PredictionLog(root, segment_bytes=20_000).open()

    async def worker() -> None:
        while True:
            (rid,) = new_request_ids(1)
            await log.log_predictions(
                endpoint="credit",
                version=1,
                role="champion",
                request_ids=[rid],
                features={"x": np.array([1.5]), "c": ["a"]},
                predictions=np.array([1]),
                probabilities=np.array([[0.25, 0.75]]),
                latency_ms=0.5,
            )
            sys.stdout.write(rid + "\n")
            sys.stdout.flush()

    await asyncio.gather(*(worker() for _ in range(16)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
