# ruff: noqa: B023 - the closures run inside their own loop iteration
"""Micro-benchmarks of the serving core (not a test; run by hand, belongs in bench/).

.venv/bin/python bench/serving/bench_core.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import timeit

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from loopml.data.signature import Column, Signature
from loopml.logs.predlog import PredictionLog
from loopml.serve.inference.batching import MicroBatcher
from loopml.serve.inference.predictors import batch_predictor
from loopml.serve.wire import protocols
from loopml.serve.wire.ids import new_request_ids
from loopml.serve.wire.validation import Validator


def best_us(fn, n=5000, repeat=5):
    return min(timeit.repeat(fn, number=n, repeat=repeat)) / n * 1e6


def bench_validation() -> None:
    names = [f"f{i}" for i in range(20)]
    sig = Signature(tuple(Column(n, "number", "float64") for n in names))
    v = Validator(sig)
    body = protocols.dumps({"rows": [{n: 0.5 for n in names}]})
    cols = protocols.parse_loopml(body).columns
    b = v.validate(cols)
    mixed = Signature(
        (
            *tuple(Column(n, "number", "float64") for n in names[:16]),
            Column("n", "number", "int64"),
            Column("b", "bool", "bool"),
            Column("c1", "category", "string", categories=("a", "b", "c")),
            Column("c2", "category", "string", categories=("x", "y")),
        )
    )
    vm = Validator(mixed)
    mcols = {**{n: [0.5] for n in names[:16]}, "n": [3], "b": [True], "c1": ["a"], "c2": ["y"]}
    bm = vm.validate(mcols)
    print("validation, 1 row (best of 5):")
    print(
        f"  20 float: parse loopml JSON {best_us(lambda: protocols.parse_loopml(body)):.1f} µs, "
        f"validate {best_us(lambda: v.validate(cols)):.1f} µs, "
        f"frame {best_us(lambda: v.frame(b)):.1f} µs"
    )
    print(
        f"  16 float + int + bool + 2 categories: validate "
        f"{best_us(lambda: vm.validate(mcols)):.1f} µs, frame {best_us(lambda: vm.frame(bm)):.1f} µs"
    )
    X, y = make_classification(2000, 20, random_state=0)
    model = LogisticRegression().fit(pd.DataFrame(X, columns=names), y)
    frame = v.frame(b)
    print(
        f"  for scale: model.predict on that frame {best_us(lambda: model.predict(frame), 500):.1f} µs"
    )


def bench_log(concurrency: int = 64, seconds: float = 3.0) -> None:
    with tempfile.TemporaryDirectory(dir=os.getcwd()) as root:
        for durable in (True, False):
            log = PredictionLog(root, durable=durable).open()
            feats = {f"f{i}": np.array([0.5]) for i in range(20)}
            count = 0

            async def worker(stop: float) -> None:
                nonlocal count
                while time.perf_counter() < stop:
                    await log.log_predictions(
                        endpoint="e",
                        version=1,
                        role="champion",
                        request_ids=new_request_ids(1),
                        features=feats,
                        predictions=np.array([1]),
                        probabilities=np.array([[0.3, 0.7]]),
                        latency_ms=0.4,
                    )
                    count += 1

            async def run() -> None:
                stop = time.perf_counter() + seconds
                await asyncio.gather(*(worker(stop) for _ in range(concurrency)))

            asyncio.run(run())
            w = log.predictions
            log.close()
            mode = "durable" if durable else "buffered"
            extra = ""
            if w.fsyncs:
                extra = (
                    f", {w.fsyncs} fsyncs (mean {w.fsync_seconds / w.fsyncs * 1000:.2f} ms), "
                    f"{w.records / w.fsyncs:.1f} records per fsync"
                )
            print(f"log {mode} c={concurrency}: {count / seconds:,.0f} records/s{extra}")
        fd = os.open(os.path.join(root, "fsync-probe"), os.O_WRONLY | os.O_CREAT)
        lat = []
        for _ in range(50):
            os.write(fd, b"x" * 512)
            t0 = time.perf_counter()
            os.fsync(fd)
            lat.append(time.perf_counter() - t0)
        os.close(fd)
        lat_ms = np.array(lat) * 1000
        print(
            f"fsync of a 512-byte append on this disk: median {np.median(lat_ms):.2f} ms, "
            f"p99 {np.percentile(lat_ms, 99):.2f} ms"
        )


def bench_batcher(seconds: float = 2.0) -> None:
    names = [f"f{i}" for i in range(20)]
    sig = Signature(tuple(Column(n, "number", "float64") for n in names))
    v = Validator(sig)
    X, y = make_classification(2000, 20, random_state=0)
    model = LogisticRegression().fit(pd.DataFrame(X, columns=names), y)
    cols = {n: [0.5] for n in names}
    for executor in ("inline", "thread"):
        for conc in (1, 4, 16, 64):
            batcher = MicroBatcher(batch_predictor(model, v), executor=executor)
            done = 0

            async def client(stop: float) -> None:
                nonlocal done
                while time.perf_counter() < stop:
                    await batcher.submit(v.validate(cols))
                    done += 1

            async def run() -> None:
                stop = time.perf_counter() + seconds
                await asyncio.gather(*(client(stop) for _ in range(conc)))

            asyncio.run(run())
            batcher.close()
            sizes = batcher.batch_sizes
            mean = sum(k * c for k, c in sizes.items()) / sum(sizes.values())
            print(
                f"batcher {executor:6s} c={conc:2d}: {done / seconds:8,.0f} predictions/s, "
                f"mean batch {mean:5.1f}, max batch {max(sizes)}"
            )


if __name__ == "__main__":
    bench_validation()
    bench_log()
    bench_batcher()
