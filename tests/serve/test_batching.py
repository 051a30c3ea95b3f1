from __future__ import annotations

import asyncio
import time

import numpy as np
import pandas as pd
import pytest

from loopml.serve.batching import MicroBatcher, batch_predictor
from loopml.serve.validation import Validator


def _rows(n: int, seed: int = 0) -> list[dict[str, list[float]]]:
    rng = np.random.default_rng(seed)
    return [{f"f{j}": [float(rng.normal())] for j in range(4)} for _ in range(n)]


@pytest.mark.parametrize("executor", ["inline", "thread", "auto"])
def test_concurrent_single_rows_are_batched_and_answers_match(numeric_sig, numeric_model, executor):
    v = Validator(numeric_sig)
    batcher = MicroBatcher(batch_predictor(numeric_model, v), max_batch_size=16, executor=executor)
    rows = _rows(200)

    async def client(i: int):
        await asyncio.sleep(0)  # clients arrive spread over loop turns
        return await batcher.submit(v.validate(rows[i]))

    async def run():
        return await asyncio.gather(*(client(i) for i in range(200)))

    answers = asyncio.run(run())
    batcher.close()
    frame = pd.DataFrame([{k: r[k][0] for k in r} for r in rows])
    assert [int(a[0][0]) for a in answers] == numeric_model.predict(frame).tolist()
    np.testing.assert_allclose(
        np.vstack([a[1] for a in answers]), numeric_model.predict_proba(frame)
    )
    sizes = batcher.batch_sizes
    assert sum(k * c for k, c in sizes.items()) == 200
    assert max(sizes) > 1 and max(sizes) <= 16
    assert sum(sizes.values()) <= 200 / 4  # on average at least 4 rows per predict


def test_lone_request_does_not_wait_for_the_batch_window(numeric_sig, numeric_model):
    v = Validator(numeric_sig)
    batcher = MicroBatcher(batch_predictor(numeric_model, v), max_wait_ms=500)

    async def run():
        t0 = time.perf_counter()
        for row in _rows(5):
            await batcher.submit(v.validate(row))
        return time.perf_counter() - t0

    elapsed = asyncio.run(run())
    assert batcher.batch_sizes == {1: 5}
    assert elapsed < 0.5  # five sequential requests, far less than one max_wait each


def test_multi_row_requests_split_back_in_order(numeric_sig, numeric_model):
    v = Validator(numeric_sig)
    batcher = MicroBatcher(batch_predictor(numeric_model, v))
    data = [{f"f{j}": list(np.arange(k, dtype=float) + j) for j in range(4)} for k in (1, 3, 2)]

    async def run():
        return await asyncio.gather(*(batcher.submit(v.validate(d)) for d in data))

    answers = asyncio.run(run())
    assert [len(a[0]) for a in answers] == [1, 3, 2]
    for d, (pred, _) in zip(data, answers, strict=True):
        assert pred.tolist() == numeric_model.predict(pd.DataFrame(d)).tolist()


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_exception_reaches_every_waiter_of_the_batch_and_batcher_recovers(executor):
    calls = []

    def predict(items):
        calls.append(list(items))
        if "bad" in items:
            raise ValueError("model failed")
        return [x.upper() for x in items]

    batcher = MicroBatcher(predict, executor=executor)

    async def run():
        first = await asyncio.gather(
            *(batcher.submit(x) for x in ("a", "bad", "c")), return_exceptions=True
        )
        second = await batcher.submit("d")
        return first, second

    first, second = asyncio.run(run())
    batcher.close()
    assert calls[0] == ["a", "bad", "c"]
    assert all(isinstance(r, ValueError) for r in first)
    assert second == "D"


def test_wrong_result_count_is_an_error_not_a_hang():
    batcher = MicroBatcher(lambda items: items[:1])

    async def run():
        return await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(run()))


def test_auto_moves_slow_models_to_the_thread():
    def slow(items):
        time.sleep(0.005)
        return items

    batcher = MicroBatcher(slow, executor="auto", inline_below_ms=2.0)

    async def run():
        for i in range(3):
            await batcher.submit(i)

    asyncio.run(run())
    assert batcher.predict_ms_ewma > 2.0 and not batcher._inline()
    batcher.close()
