"""The rollout's memory between passes (``control.rollout_memory``) against a read of the
whole rollout, on a log written by ``PredictionLog`` and compacted mid-way: the same paired
test and the same guard verdicts at every pass, while a pass reads only the new rows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopml.control import Controller
from loopml.control import guards as G
from loopml.control import judgement as J
from loopml.control import rollout as R
from loopml.control.rollout_memory import Look
from loopml.control.samples import batch_bounds, read_label_map, read_rows, role_rows, sample_of
from loopml.logs.compaction import compact
from loopml.logs.layout import log_location
from loopml.logs.predlog import PredictionLog
from loopml.serve.wire.ids import new_request_ids
from loopml.store import Store
from loopml.store.rows import ACTIVE_STATES, RolloutState
from tests.control._log import Clock, make_config, register


def full_look(ctx: Any, ro: dict, now: float) -> Look:
    """The pass as it was before memories: every row and label since the rollout started."""
    rows = read_rows(ctx.root, ro["endpoint"], ro["started_at"], now)
    labels = read_label_map(ctx.root, ro["endpoint"], ro["started_at"], now)
    has_proba = "_proba" in rows and bool(rows["_proba"].notna().any())
    _, score, classes = R._metric_and_score(ctx, ro, has_proba)
    pairs = J.concat(
        [
            J.pairs_of(
                rows,
                labels,
                candidate=ro["candidate_id"],
                champion=ro["champion_id"],
                roles=R.CHALLENGER_ROLE[s],
                score=score,
                classes=classes,
            )
            for s in ACTIVE_STATES
        ]
    )
    chal = role_rows(rows, ro["candidate_id"], R.CHALLENGER_ROLE[ro["state"]])
    champ = role_rows(rows, ro["champion_id"], R.CHAMPION_ROLE[ro["state"]])
    return Look(pairs, chal[chal["_ts"] >= ro["cursor"]], champ, has_proba)


def verdicts(ctx: Any, ro: dict, seen: Look, shown: bool) -> list[dict]:
    """The guard verdicts of the batches a pass would judge (``rollout._operational``)."""
    out, none = [], pd.Series(dtype=object)
    chal, champ = seen.challenger, seen.champion
    for lo, hi in batch_bounds(chal["_ts"].to_numpy(), ro["cursor"], ctx.guards.min_samples):
        batch = chal[(chal["_ts"] >= lo) & (chal["_ts"] < hi)]
        same = champ[champ["_request_id"].isin(batch["_request_id"])]
        v = G.judge(ctx.guards, sample_of(batch, none), sample_of(same, none), quality_shown=shown)
        out.append({"batch": [lo, hi], **v.to_dict()})
    return out


class Traffic:
    """Requests through a real prediction log at the fake clock's times: the champion's
    answer, the challenger's (shadow, or canary with the champion's paired answer), and
    labels kept back to send late and out of order."""

    def __init__(self, cfg: Any, champ: int, cand: int, rng: np.random.Generator) -> None:
        self.where, self.champ, self.cand, self.rng = log_location(cfg), champ, cand, rng
        self.log = PredictionLog(self.where).open()
        self.due: list[tuple[str, int]] = []  # (request id, label) not sent yet
        self.late: list[dict] = []  # mirrored answers logged with the next requests
        self.late_every = 10  # every 10th request's mirrored answer comes late (0: none)

    def _log(self, **record: Any) -> None:
        self.log.log_predictions_sync(endpoint="ep", latency_ms=5.0, **record)

    def requests(self, t0: float, n: int, state: str) -> None:
        for record in self.late:
            self._log(**record)
        self.late = []
        for k in range(n):
            ids, y = new_request_ids(3), self.rng.integers(0, 2, 3)
            ts = int((t0 + k * 0.5) * 1e6)
            answers = [(self.champ, "champion")] if state == "shadow" else []
            answers += [(self.cand, state), (self.champ, "paired" if state == "canary" else "")]
            if state == "canary" and k % 3:  # most requests go to the champion alone
                answers = [(self.champ, "champion")]
            for i, (version, role) in enumerate(a for a in answers if a[1]):
                p = np.where(self.rng.random(3) < 0.85, y, 1 - y)
                proba = np.column_stack([1.0 - p * 0.7 - 0.15, p * 0.7 + 0.15])
                record = {
                    "version": version,
                    "role": role,
                    "request_ids": ids,
                    "features": {"x0": self.rng.normal(size=3)},
                    "predictions": p,
                    "probabilities": proba,
                    # the mirrored answer is stamped earlier than rows logged before it
                    "ts_us": ts - 700_000 * i,
                    "remember": i == 0,
                }
                if i and self.late_every and k % self.late_every == 0:  # logged a pass late
                    self.late.append(record)
                else:
                    self._log(**record)
            self.due += list(zip(ids, y.tolist(), strict=True))

    def labels(self, ts: float, share: float) -> None:
        """Send a random ``share`` of the labels kept back (any order, stamped ``ts``)."""
        take = self.rng.random(len(self.due)) < share
        sent = {rid: y for (rid, y), t in zip(self.due, take, strict=True) if t}
        self.due = [d for d, t in zip(self.due, take, strict=True) if not t]
        if sent:
            asyncio.run(self.log.log_labels(sent, ts_us=int(ts * 1e6)))

    def relabel(self, rid: str, y: int, ts: float) -> None:
        asyncio.run(self.log.log_labels({rid: y}, ts_us=int(ts * 1e6)))

    def compact(self) -> None:
        """Close the segments, compact them into parts, and log on in new segments."""
        self.log.close()
        assert compact(self.where)["segments"] > 0
        self.log = PredictionLog(self.where).open()


@pytest.fixture
def setup(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'loopml.db'}"
    cfg = make_config(tmp_path, url, rollout={"shadow": "10m", "shadow_min_samples": 60})
    store = Store(url)
    champ = register(store)
    store.endpoints.deploy("ep", champ, actor="test")
    cand = register(store)
    clock = Clock()
    ctl = Controller(cfg, store, clock=clock, holder="ctl-a")
    ctl.ctx.pair_wait = 30.0  # champion rows and labels let go before their late partners come
    yield cfg, store, ctl, clock, champ["id"], cand["id"]
    ctl.close()
    ctl.close()
    store.close()


def test_memory_judges_every_pass_as_a_full_read(setup) -> None:
    """Guards against the incremental read deciding differently from a read of the whole
    rollout: across shadow and canary steps, live segments compacted mid-way, labels late,
    out of order and one overwritten after its pair was scored."""
    cfg, store, ctl, clock, champ, cand = setup
    rng = np.random.default_rng(7)
    R.start(ctl.ctx, "ep", store.versions.get(cand))
    traffic = Traffic(cfg, champ, cand, rng)
    states, rebuilt, passes, scored_rid = set(), 0, 0, None
    for k in range(40):
        ro = store.rollouts.active("ep")[0] if store.rollouts.active("ep") else None
        if ro is None:
            break
        states.add(ro["state"])
        traffic.late_every = 10 if k % 5 == 1 else 0
        traffic.requests(clock(), 40, ro["state"])
        traffic.labels(clock() + 1, 0.5 if k % 4 else 0.0)
        if k % 7 == 3:
            traffic.compact()
        if k == 6:  # one label overwritten after its pair was scored
            rid, y = scored_rid
            traffic.relabel(rid, 1 - y, clock() + 2)
        clock.advance(60)
        now = clock()
        before = ctl.ctx.memories.get(ro["id"])
        seen = R.look(ctl.ctx, ro, now)
        rebuilt += before is not None and ctl.ctx.memories[ro["id"]] is not before
        want = full_look(ctl.ctx, ro, now)
        q, wq = (R.judge_quality(ctl.ctx, ro, x.pairs, x.has_proba) for x in (seen, want))
        assert q.outcome == wq.outcome and q.evidence == wq.evidence, k
        for name in J.FIELDS:
            np.testing.assert_array_equal(getattr(seen.pairs, name), getattr(want.pairs, name))
        shown = q.outcome == "non_inferior"
        assert verdicts(ctl.ctx, ro, seen, shown) == verdicts(ctl.ctx, ro, want, shown), k
        if scored_rid is None and seen.pairs.rows:
            labels = read_label_map(ctl.ctx.root, "ep", ro["started_at"], now)
            shadow = read_rows(ctl.ctx.root, "ep", ro["started_at"], now)
            rid = shadow[shadow["_role"] == "shadow"]["_request_id"]
            rid = next(r for r in rid if r in labels.index)
            scored_rid = (rid, int(labels[rid]))
        ctl.reconcile_once()
        passes += 1
    traffic.log.close()
    assert {RolloutState.SHADOW, RolloutState.CANARY} <= states, states
    # the overwritten label and the late mirrored answers made the memory read afresh
    assert rebuilt >= 2, rebuilt
    assert passes >= 20


def test_a_pass_after_the_first_reads_only_new_rows(setup) -> None:
    """Guards against a pass reading again what earlier passes read, from live segments or
    from the parts they were compacted into."""
    cfg, store, ctl, clock, champ, cand = setup
    R.start(ctl.ctx, "ep", store.versions.get(cand))
    traffic = Traffic(cfg, champ, cand, np.random.default_rng(3))
    traffic.late_every = 0
    traffic.requests(clock() + 5, 30, "shadow")  # 30 requests x 3 rows x 2 answers
    traffic.labels(clock(), 1.0)
    clock.advance(30)
    ctl.reconcile_once()
    memory = ctl.ctx.memories[store.rollouts.active("ep")[0]["id"]]
    assert (memory.rows.rows_read, memory.labels.rows_read) == (180, 90)
    ctl.reconcile_once()
    assert (memory.rows.rows_read, memory.labels.rows_read) == (180, 90)
    traffic.requests(clock(), 10, "shadow")
    traffic.compact()  # the rows read live are now in parts: not read again
    traffic.requests(clock(), 5, "shadow")
    clock.advance(30)
    ctl.reconcile_once()
    assert ctl.ctx.memories[store.rollouts.active("ep")[0]["id"]] is memory
    assert (memory.rows.rows_read, memory.labels.rows_read) == (180 + 90, 90)
    traffic.log.close()
