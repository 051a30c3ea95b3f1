from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pandas as pd
import pytest

from loopml.serve.inference.batching import Lane, MicroBatcher
from loopml.serve.inference.predictors import batch_predictor
from loopml.serve.inference.request_rows import Batch
from loopml.serve.wire.validation import Validator


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


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_put_items_reach_their_sink_once_per_batch_beside_awaited_ones(executor):
    """Guards MicroBatcher.put: the items nobody awaits come back to their sink in one call
    per batch and sink, with their tags and results in queue order, beside the futures of
    the batch's awaited items; a failed batch gives the sink the exception; a failing sink
    does not stop the batcher."""
    sunk: list[list[tuple]] = []
    other: list[list[tuple]] = []

    def predict(items):
        if "bad" in items:
            raise ValueError("model failed")
        return [x.upper() for x in items]

    def broken(entries):
        raise RuntimeError("sink failed")

    batcher = MicroBatcher(predict, executor=executor)

    async def run():
        batcher.put("a", 1, sunk.append)
        awaited = batcher.submit("b")
        batcher.put("c", 2, sunk.append)
        batcher.put("d", 3, other.append)
        first = await awaited
        batcher.put("bad", 4, sunk.append)
        await asyncio.sleep(0.05)
        batcher.put("e", 5, broken)
        last = await batcher.submit("f")
        return first, last

    first, last = asyncio.run(run())
    batcher.close()
    assert (first, last) == ("B", "F")
    assert sunk[0] == [(1, "a", "A"), (2, "c", "C")]
    assert other == [[(3, "d", "D")]]
    assert len(sunk) == 2 and sunk[1][0][:2] == (4, "bad")
    assert isinstance(sunk[1][0][2], ValueError)


def _auto_after_three_batches(predict) -> MicroBatcher:
    """An ``executor="auto"`` batcher (inline below 2 ms) after three one-item batches."""
    batcher = MicroBatcher(predict, executor="auto", inline_below_ms=2.0)

    async def run():
        for i in range(3):
            await batcher.submit(i)

    asyncio.run(run())
    return batcher


@pytest.mark.parametrize("shared", [True, False])
def test_a_lane_holds_other_batches_while_one_predicts(shared):
    """Guards the lane: while one version's batch predicts, the other versions of the model
    keep queueing and predict in one call after it, instead of one call each."""
    started, release = threading.Event(), threading.Event()
    calls: dict[str, list[int]] = {"a": [], "b": []}

    def slow(items):
        started.set()
        release.wait(10)
        calls["a"].append(len(items))
        return items

    def fast(items):
        calls["b"].append(len(items))
        return items

    lanes = (asyncio.Lock(), asyncio.Lock())
    a = MicroBatcher(slow, executor="thread", lane=lanes[0])
    b = MicroBatcher(fast, executor="thread", lane=lanes[0] if shared else lanes[1])

    async def run():
        first = asyncio.ensure_future(a.submit(0))
        for _ in range(5000):  # until a's batch is predicting
            if started.is_set():
                break
            await asyncio.sleep(0.001)
        others = []
        for i in range(5):  # arrivals spread over loop turns: each would be a batch alone
            others.append(asyncio.ensure_future(b.submit(i)))
            await asyncio.sleep(0.01)
        held = list(calls["b"])
        release.set()
        return held, await first, await asyncio.gather(*others)

    held, first, others = asyncio.run(run())
    a.close()
    b.close()
    assert first == 0 and others == list(range(5))
    if shared:
        assert held == [] and calls["b"] == [5]
    else:
        assert held == calls["b"] and len(held) > 1


def test_a_lane_cuts_its_members_batches_together():
    """Guards the lane's joint cut: rows queued for two versions of one model are predicted
    under one hold, before any answer resumes its caller, so they come back as one cohort."""
    order: list[object] = []

    def named(name):
        def predict(items):
            order.append((name, len(items)))
            return items

        return predict

    lane = Lane()
    a = MicroBatcher(named("a"), executor="inline", lane=lane)
    b = MicroBatcher(named("b"), executor="inline", lane=lane)

    async def run():
        futs = [a.enqueue(i) for i in range(3)] + [b.enqueue(i) for i in range(2)]
        futs[0].add_done_callback(lambda f: order.append("answered"))
        return await asyncio.gather(*futs)

    assert asyncio.run(run()) == [0, 1, 2, 0, 1]
    assert order == [("a", 3), ("b", 2), "answered"]


def test_auto_moves_slow_models_to_the_thread():
    def slow(items):  # 5 ms of CPU: slow by what it costs, not by what it waits for
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.005:
            pass
        return items

    batcher = _auto_after_three_batches(slow)
    assert batcher.predict_ms_ewma > 2.0 and not batcher._inline()
    batcher.close()


def test_auto_keeps_a_waiting_but_cheap_predict_inline():
    """Wall time spent off the CPU (the GIL held by other threads, I/O) is not predict cost."""

    def waits(items):
        time.sleep(0.005)
        return items

    batcher = _auto_after_three_batches(waits)
    assert batcher.predict_ms_ewma < 2.0 and batcher._inline()
    batcher.close()


def _classifiers():
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    return [
        LogisticRegression(max_iter=500),
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        RandomForestClassifier(n_estimators=15, random_state=0),
        ExtraTreesClassifier(n_estimators=15, random_state=0),
        DecisionTreeClassifier(random_state=0),
        HistGradientBoostingClassifier(max_iter=30, random_state=0),
        GradientBoostingClassifier(n_estimators=20, random_state=0),
        CalibratedClassifierCV(LogisticRegression(max_iter=500), cv=3),
    ]


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("model", _classifiers(), ids=lambda m: type(m).__name__)
def test_predictions_from_proba_equal_the_models_own_predict(numeric_sig, model, n_classes):
    """The oracle is the estimator's own ``predict`` on the same frame, row by row."""
    from sklearn.base import clone

    from loopml.evaluate.measure.predictions import predicts_argmax as predicts_argmax_of_proba
    from loopml.serve.inference.predictors import accepts_array

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(600, 4)), columns=[f"f{j}" for j in range(4)])
    y = np.array(["no", "yes", "maybe"])[
        (X["f0"] + 0.5 * X["f1"] > 0).to_numpy().astype(int) + (n_classes == 3) * (X["f2"] > 1)
    ]
    fitted = clone(model).fit(X, y)
    assert predicts_argmax_of_proba(fitted)
    v = Validator(numeric_sig)
    assert accepts_array(fitted, v)
    once = batch_predictor(fitted, v, from_proba=True, as_array=True)
    rows = [v.validate(r) for r in _rows(300, seed=3)]
    got = once(rows)
    frame = v.frame(Batch.concat(rows))
    want_pred, want_proba = fitted.predict(frame), fitted.predict_proba(frame)
    np.testing.assert_array_equal(np.concatenate([p for p, _ in got]), want_pred)
    np.testing.assert_allclose(np.concatenate([q for _, q in got]), want_proba)


def test_unknown_classifiers_keep_both_calls():
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    from loopml.evaluate.measure.predictions import predicts_argmax as predicts_argmax_of_proba

    X, y = np.random.default_rng(0).normal(size=(50, 3)), np.arange(50) % 2
    assert not predicts_argmax_of_proba(SVC().fit(X, y))  # no predict_proba of its own
    assert not predicts_argmax_of_proba(KNeighborsClassifier().fit(X, y))


def test_models_that_read_columns_by_name_keep_the_dataframe(numeric_sig):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from loopml.serve.inference.predictors import accepts_array

    v = Validator(numeric_sig)
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(80, 4)), columns=list(numeric_sig.names))
    y = (X["f0"] > 0).astype(int)
    by_name = ColumnTransformer([("s", StandardScaler(), ["f0", "f1"])], remainder="passthrough")
    assert not accepts_array(make_pipeline(by_name, LogisticRegression()).fit(X, y), v)
    assert not accepts_array(LogisticRegression().fit(X.to_numpy(), y), v)  # no names to match
    assert not accepts_array(LogisticRegression().fit(X[X.columns[::-1]], y), v)  # other order
    assert accepts_array(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), v)


def _echo(calls: list[list[int]], at: list[float] | None = None):
    def predict(items: list[int]) -> list[int]:
        calls.append(list(items))
        if at is not None:
            at.append(time.perf_counter())
        return items

    return predict


async def _cohort(batcher: MicroBatcher, items: list[int], late: list[int], after: float):
    """Submit ``items`` now and ``late`` ``after`` seconds later; the answers."""

    async def later(i: int) -> int:
        await asyncio.sleep(after)
        return await batcher.submit(i)

    return await asyncio.gather(*(batcher.submit(i) for i in items), *(later(i) for i in late))


@pytest.mark.parametrize("lane", [None, "lane"])
def test_steady_traffic_waits_to_fill_the_last_cohort(lane):
    """The cohort wait: after a cohort of four, a batch that has two waits (on a timer) for
    the two more on their way, which arrive long after the quiet turns; without the wait
    they would be a call of their own."""

    async def run(delay_ms: float) -> list[list[int]]:
        calls: list[list[int]] = []
        b = MicroBatcher(
            _echo(calls),
            max_wait_ms=500,
            delay_ms=delay_ms,
            lane=Lane() if lane else None,
        )
        assert await _cohort(b, [1, 2, 3, 4], [], 0) == [1, 2, 3, 4]
        assert await _cohort(b, [5, 6], [7, 8], 0.03) == [5, 6, 7, 8]
        return calls

    assert asyncio.run(run(200)) == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert asyncio.run(run(0)) == [[1, 2, 3, 4], [5, 6], [7, 8]]


def test_the_cohort_wait_ends_when_the_cohort_is_full_and_never_holds_a_lone_client():
    async def timed(coro) -> float:
        t0 = time.perf_counter()
        await coro
        return time.perf_counter() - t0

    async def lone(b: MicroBatcher, items: list[int]) -> None:
        for i in items:
            await b.submit(i)

    async def run() -> tuple[list[list[int]], list[float]]:
        calls: list[list[int]] = []
        b = MicroBatcher(_echo(calls), max_wait_ms=2000, delay_ms=1000)
        took = [
            await timed(lone(b, [1, 2, 3])),  # a lone client's cohorts are one: no wait
            await timed(_cohort(b, [4, 5, 6], [], 0)),
            # the cohort of three refills 20 ms in: cut then, not after the 1 s delay
            await timed(_cohort(b, [7], [8, 9], 0.02)),
            # traffic falls to one client: its first request waits out the delay, once
            await timed(lone(b, [10])),
            await timed(lone(b, [11, 12])),
        ]
        return calls, took

    calls, took = asyncio.run(run())
    assert calls == [[1], [2], [3], [4, 5, 6], [7, 8, 9], [10], [11], [12]], calls
    assert took[0] < 0.5 and took[1] < 0.5 and took[2] < 0.5, took
    assert 0.9 < took[3] < 1.9 and took[4] < 0.5, took


def test_the_cohort_wait_counts_the_whole_lane_and_only_routed_requests():
    """A lane's cohort is its members' routed requests together (champion and canary);
    requests nobody awaits (a shadow's, the champion's paired rows) are not counted."""

    async def run() -> tuple[list[list[int]], list[list[int]]]:
        champ, canary, at = [], [], []
        lane = Lane()
        a = MicroBatcher(_echo(champ, at), max_wait_ms=500, delay_ms=200, lane=lane)
        b = MicroBatcher(_echo(canary), max_wait_ms=500, delay_ms=200, lane=lane)
        paired = a.enqueue(99)  # not routed: the cohort below is three, not four
        await asyncio.gather(a.submit(1), a.submit(2), b.submit(3))
        await paired
        t0 = time.perf_counter()

        async def late_canary() -> int:
            await asyncio.sleep(0.03)
            return await b.submit(6)

        await asyncio.gather(a.submit(4), a.submit(5), late_canary())
        # the champion's two waited for the canary's one (a cohort of three), and were cut
        # when it came, not after the 200 ms delay
        assert 0.025 < at[-1] - t0 < 0.15, at[-1] - t0
        return champ, canary

    champ, canary = asyncio.run(run())
    assert champ == [[99, 1, 2], [4, 5]] and canary == [[3], [6]], (champ, canary)


def test_the_cohort_wait_waits_only_for_requests_that_can_come():
    """A closed loop: every client but those between an answer and their next request is
    inside the server, so a batch does not wait for a cohort that cannot fill (here no
    request is coming: the cut is at once, not after the 1 s delay)."""
    from loopml.serve.inference.cohorts import InFlight

    flight = InFlight()

    async def run() -> tuple[list[list[int]], float]:
        calls: list[list[int]] = []
        b = MicroBatcher(_echo(calls), max_wait_ms=2000, delay_ms=1000, coming=flight.coming)

        async def client(i: int) -> int:
            flight.enter()
            try:
                return await b.submit(i)
            finally:
                flight.leave()

        await asyncio.gather(*(client(i) for i in (1, 2, 3)))  # the peak: three at once
        for _ in range(2):  # two of the three are still inside (waiting for their log record)
            flight.enter()
        t0 = time.perf_counter()
        await client(4)  # a cohort of three before, one queued, and at most one more to come
        waited = time.perf_counter() - t0
        return calls, waited

    calls, waited = asyncio.run(run())
    assert calls == [[1, 2, 3], [4]] and waited < 0.5, (calls, waited)
    flight.leave()
    flight.leave()
    assert flight.n == 0 and flight.coming() == 3  # the peak of this window


def test_in_flight_forgets_an_old_peak():
    from loopml.serve.inference.cohorts import InFlight

    flight = InFlight(window=0.05)
    for _ in range(5):
        flight.enter()
    for _ in range(5):
        flight.leave()
    assert flight.coming() == 5
    time.sleep(0.06)
    assert flight.coming() == 5  # the last window's peak still counts
    time.sleep(0.06)
    assert flight.coming() == 0
