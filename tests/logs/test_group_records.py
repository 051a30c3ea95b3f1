"""A record of several requests (a shadow's batch, PredictionLog.encode_group) reads as the
same rows as one record per request: its oracle is the per-request record (hypothesis)."""

from __future__ import annotations

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.logs.logtables import dumps, prediction_table
from loopml.logs.predlog import PredictionLog
from loopml.serve.wire.ids import new_request_ids

TS = 1_700_000_000_000_000


@st.composite
def requests(draw):
    """Requests of 1-4 rows each, with or without entity keys, flags, event times and a
    context column (so the records' feature columns differ)."""
    out = []
    for _ in range(draw(st.integers(1, 6))):
        n = draw(st.integers(1, 4))
        features = {"x": [draw(st.floats(-5, 5)) for _ in range(n)], "c": ["a"] * n}
        if draw(st.booleans()):
            features["sex"] = [draw(st.sampled_from(["f", "m", None])) for _ in range(n)]
        out.append(
            {
                "ids": new_request_ids(n),
                "features": features,
                "pred": np.array([draw(st.integers(0, 1)) for _ in range(n)]),
                "proba": np.array([[0.3, 0.7]] * n),
                "key": draw(st.one_of(st.none(), st.text("abc", min_size=1, max_size=3))),
                "latency": draw(st.floats(0, 100)),
                "flags": draw(st.one_of(st.none(), st.just(["unseen:c"] * n))),
                "times": draw(
                    st.one_of(
                        st.none(),
                        st.lists(
                            st.one_of(st.none(), st.integers(TS - 10**9, TS)),
                            min_size=n,
                            max_size=n,
                        ),
                    )
                ),
            }
        )
    return out


def _read(payloads: list[bytes]) -> dict:
    records = [orjson.loads(p) for p in payloads]
    for rec in records:
        rec["t"] = TS  # the write time: the only field the two ways may differ in
    return prediction_table(records).to_pydict()


@settings(max_examples=60, deadline=None)
@given(reqs=requests())
def test_a_group_record_reads_as_one_record_per_request(tmp_path_factory, reqs):
    log = PredictionLog(tmp_path_factory.mktemp("log"))
    each = [
        log.encode_predictions(
            endpoint="credit",
            version=3,
            role="shadow",
            request_ids=r["ids"],
            features=r["features"],
            predictions=r["pred"],
            probabilities=r["proba"],
            latency_ms=r["latency"],
            entity_key=r["key"],
            flags=r["flags"],
            event_times=r["times"],
            remember=False,
        )
        for r in reqs
    ]
    counts = [len(r["ids"]) for r in reqs]

    def rows(key: str):
        if all(r[key] is None for r in reqs):
            return None
        return [x for r in reqs for x in (r[key] or [None] * len(r["ids"]))]

    group = log.encode_group(
        endpoint="credit",
        version=3,
        role="shadow",
        request_ids=[i for r in reqs for i in r["ids"]],
        counts=counts,
        features=[orjson.Fragment(dumps(r["features"])) for r in reqs],
        predictions=np.concatenate([r["pred"] for r in reqs]),
        probabilities=np.concatenate([r["proba"] for r in reqs]),
        latency_ms=[r["latency"] for r in reqs],
        entity_keys=[r["key"] for r in reqs],
        flags=rows("flags"),
        event_times=rows("times"),
    )
    want, got = _read(each), _read([group])
    assert got == want
    # each request keeps its own call: the unit a rollout's paired test counts
    assert len(set(got["_call"])) == len(reqs)
