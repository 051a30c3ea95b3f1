"""What the controller keeps of one rollout between its passes, so that a pass reads only the
log rows and labels new since the last (``loopml.logs.logtail``) and not the whole rollout.

A pass needs (``control.rollout``): the paired test over every labelled pair since the
rollout started, and the guard batches after the rollout's cursor. So the memory holds

- the pairs already scored, per challenger role (shadow, canary), as the arrays of
  ``judgement.Pairs`` kept in its canonical order (``judgement.order_of``), so that ``judge``
  sees exactly the arrays a read of the whole rollout gives;
- the challenger's rows not scored yet (waiting for their champion's answer or their label:
  a label may come any time after its prediction), and scored rows the guards still need
  (the current role's, at or after the cursor);
- the champion's rows and the labels that may still pair: a champion's row until its
  challenger's row is gone, one without any for ``PAIR_WAIT`` seconds of log time; a label
  until its pair is scored, or, with no row of its request held, for ``PAIR_WAIT`` seconds.

What is let go is remembered as 64-bit hashes of request ids (:class:`Gone`, 8 bytes a row):
a new row or label that would have paired with something let go (a challenger's row whose
champion row or label was dropped, a second label of a scored pair: the latest label wins,
so the pair must be scored again) makes the pass raise :class:`Stale`, and the controller
reads the rollout afresh into a new memory. So the memory never decides differently from a
full read; it only costs a full read when traffic does something unusual. A label's
``_ts`` is when it arrived; labels arriving up to ``samples.LABEL_SLACK`` past "now" count,
as in ``samples.read_label_map``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.control import judgement as J
from loopml.control.samples import COLUMNS, LABEL_SLACK, rows_frame
from loopml.logs.layout import LABELS, PREDICTIONS, LogLocation
from loopml.logs.logtables import concat_tables
from loopml.logs.logtail import LogTail, bound_us

PAIR_WAIT = 900.0  # s a champion row or label waits for its challenger's row (then: Gone)
CHALLENGER = {"shadow": 0, "canary": 1}  # role -> group (control.rollout.ACTIVE_STATES order)
CHAMPION = ("champion", "paired")
PAIRED = ("_request_id", "_call", "_entity_key", "_proba", "_prediction", "_ts")
GUARDED = ("_latency_ms", "_flags", "_score")


class Stale(Exception):
    """What arrived needs rows or labels the memory let go: read the rollout afresh."""


def _hashes(ids: Any) -> np.ndarray:
    """64-bit hashes of request ids: what rows, labels and pairs are matched by here (a
    NumPy ``isin`` on integers; on the ids' strings it costs ~50 times more). Pairs are
    then joined on the ids themselves (``judgement.pairs_of``); two ids of one rollout
    sharing a hash (about n^2 / 2^64: 1e-6 at ten million) would at worst count a pair as
    waiting that is not, until a fresh read."""
    return pd.util.hash_array(np.asarray(ids, dtype=object))


class Gone:
    """Request ids let go of, as sorted chunks of their 64-bit hashes (``_hashes``; a false
    match only costs a fresh read, never a wrong decision)."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []

    def add(self, hashes: np.ndarray) -> None:
        if len(hashes):
            self._chunks.append(np.unique(hashes))
        if len(self._chunks) > 8:
            self._chunks = [np.unique(np.concatenate(self._chunks))]

    def holds(self, h: np.ndarray) -> np.ndarray:
        out = np.zeros(len(h), dtype=bool)
        for c in self._chunks:
            i = np.minimum(np.searchsorted(c, h), len(c) - 1)
            out |= c[i] == h
        return out

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._chunks)


@dataclass
class _Group:
    """The scored pairs of one challenger role, in canonical order."""

    cluster: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    diff: np.ndarray = field(default_factory=lambda: np.empty(0))
    champion_loss: np.ndarray = field(default_factory=lambda: np.empty(0))
    ts: np.ndarray = field(default_factory=lambda: np.empty(0))
    paired: int = 0  # scored rows (finite losses or not)
    labelled: int = 0  # of them with an entity key: see judgement._cluster_keys
    keyed: int = 0

    def add(self, p: J.Pairs, labelled: int, keyed: int) -> None:
        self.paired += p.paired
        self.labelled, self.keyed = self.labelled + labelled, self.keyed + keyed
        if not p.rows:
            return
        # both sorted: one stable sort of the two runs (timsort merges them in O(n))
        o = J.order_of(*(np.concatenate([a, b]) for a, b in self._triple(p)))
        for name in J.FIELDS:
            setattr(self, name, np.concatenate([getattr(self, name), getattr(p, name)])[o])

    def _triple(self, p: J.Pairs) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(self.ts, p.ts), (self.diff, p.diff), (self.champion_loss, p.champion_loss)]

    def pairs(self, waiting: int, has_call: bool) -> J.Pairs:
        if not self.labelled:
            unit = "request"
        elif not self.keyed:
            unit = "request" if has_call else "row (the log records no requests)"
        else:
            unit = "entity key" if self.keyed == self.labelled else "entity key or request"
        return J.Pairs(
            self.cluster,
            self.diff,
            self.champion_loss,
            self.ts,
            unit=unit,
            paired=self.paired + waiting,
        )


@dataclass
class Look:
    """One pass's view: the pairs to judge, the challenger's rows from the cursor on (current
    role) and the champion's rows with the same request ids (the guard batches')."""

    pairs: J.Pairs
    challenger: pd.DataFrame
    champion: pd.DataFrame
    has_proba: bool


class RolloutMemory:
    """One rollout's rows, labels and scored pairs between passes; see the module docstring."""

    def __init__(
        self, where: LogLocation, ro: Mapping[str, Any], pair_wait: float = PAIR_WAIT
    ) -> None:
        self.pair_wait = pair_wait
        self.start, self.endpoint = float(ro["started_at"]), ro["endpoint"]
        self.candidate, self.champion = ro["candidate_id"], ro["champion_id"]
        self.rows = LogTail(where, PREDICTIONS, self.endpoint, self.start, COLUMNS)
        self.labels = LogTail(where, LABELS, self.endpoint, self.start, ("_label",))
        self.held = pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
        self.held["_ts"] = self.held["_ts"].astype(float)
        self.held["_scored"] = pd.Series(dtype=bool)
        self.held["_h"] = pd.Series(dtype=np.uint64)
        self.held["_us"] = pd.Series(dtype=np.int64)  # _ts in µs: bounds as a whole read's
        self.lab = pd.DataFrame(
            {
                "_ts": pd.Series(dtype=np.int64),  # µs
                "_label": pd.Series(dtype=object),
                "_h": pd.Series(dtype=np.uint64),
            }
        )
        self.groups = [_Group(), _Group()]
        self.scored, self.gone = Gone(), Gone()  # pairs scored; rows and labels let go
        self.row_types: dict[str, pa.DataType] = {}
        self.label_types: dict[str, pa.DataType] = {}
        self.first_proba: float = np.inf  # log time (µs) of the first row with probabilities
        self.has_call = False
        self.score: str | None = None
        self.now = -np.inf

    # -- reading what is new ------------------------------------------------------------
    def _conform(self, t: pa.Table, types: dict[str, pa.DataType]) -> pa.Table:
        """One type per column, as a read of everything would give (``concat_tables``: text
        once any part has text, numbers promoted); a held column changing type is
        :class:`Stale` (the rows held would differ from a fresh read's)."""
        u = concat_tables([pa.schema(list(types.items())).empty_table(), t])
        for f in u.schema:
            if f.name in types and f.type != types[f.name]:
                raise Stale(f"column {f.name} changed type ({types[f.name]} -> {f.type})")
            if not pa.types.is_null(f.type) and f.name != "_ts":
                types[f.name] = f.type
        return u

    def _read_rows(self) -> None:
        t = self.rows.read()
        if not t.num_rows:
            return
        t = self._conform(t, self.row_types)
        self.has_call = self.has_call or "_call" in t.column_names
        if "_proba" in t.column_names:
            got = t.filter(pc.is_valid(t.column("_proba")))
            if got.num_rows:
                first = pc.min(got.column("_ts").cast(pa.int64())).as_py()
                self.first_proba = min(self.first_proba, first)
        new = rows_frame(t)
        chal = (new["_version"] == self.candidate) & new["_role"].isin(CHALLENGER)
        champ = (new["_version"] == self.champion) & new["_role"].isin(CHAMPION)
        new["_h"] = _hashes(new["_request_id"].to_numpy())
        new["_us"] = t.column("_ts").cast(pa.int64()).to_numpy()
        hs = new["_h"].to_numpy()
        if (chal & (self.scored.holds(hs) | self.gone.holds(hs))).any():
            raise Stale("a challenger row of a request already scored or let go")
        if (champ & self.scored.holds(hs)).any():
            raise Stale("a second champion row of a scored request")
        keep = new[chal | champ].assign(_scored=False)
        if len(keep):
            self.held = pd.concat([self.held, keep], ignore_index=True)

    def _read_labels(self, now: float) -> None:
        t = self.labels.read()
        if t.num_rows:
            t = self._conform(t, self.label_types)
            ids = t.column("_request_id").to_pandas()
            new = pd.DataFrame(
                {
                    "_ts": t.column("_ts").cast(pa.int64()).to_numpy(),
                    "_label": t.column("_label").to_pandas().to_numpy(),
                    "_h": _hashes(ids.to_numpy()),
                },
                index=ids,
            )
            if self.scored.holds(new["_h"].to_numpy()).any():
                raise Stale("a new label for a pair already scored (the latest label wins)")
            lab = pd.concat([self.lab, new])
            # latest wins among labels that count at this look; a later one waits beside
            lab = lab.iloc[np.argsort(lab["_ts"].to_numpy(), kind="stable")]
            self.lab = lab
        due = self.lab["_ts"].to_numpy() < bound_us(now + LABEL_SLACK)
        counted = self.lab[due]
        counted = counted[~counted.index.duplicated(keep="last")]
        self.lab = pd.concat([counted, self.lab[~due]])

    # -- one look -------------------------------------------------------------------------
    def look(
        self,
        now: float,
        *,
        score_of: Any,
        classes: list | None,
        roles: tuple[str, ...],
        champion_roles: tuple[str, ...],
        cursor: float,
    ) -> Look:
        """Read what is new, score the pairs that are complete, and give this look's view.
        ``score_of(has_proba)``: the per-row score; ``roles``/``champion_roles``: the guard
        batches' roles in the rollout's current state, ``cursor`` where they start."""
        if now < self.now:
            raise Stale("the clock went back")
        self.now = now
        self._read_rows()
        self._read_labels(now)
        has_proba = self.first_proba < bound_us(now)
        score = score_of(has_proba)
        if self.score is not None and score != self.score:
            raise Stale(f"the per-row score changed ({self.score} -> {score})")
        self.score = score
        h, now_us = self.held, bound_us(now)
        seen = h["_us"].to_numpy() < now_us
        champ = h[seen & h["_role"].isin(CHAMPION).to_numpy()]
        champ = champ.iloc[np.argsort(champ["_ts"].to_numpy(), kind="stable")]
        due = self.lab[self.lab["_ts"].to_numpy() < bound_us(now + LABEL_SLACK)]
        labels, label_h, champ_h = due["_label"], due["_h"].to_numpy(), champ["_h"].to_numpy()
        waiting = [0, 0]
        scored_now = np.zeros(len(h), dtype=bool)
        for role, g in CHALLENGER.items():
            mine = seen & (h["_role"] == role).to_numpy() & ~h["_scored"].to_numpy()
            chal = h[mine]
            chal_h = chal["_h"].to_numpy()
            partner = np.isin(chal_h, champ_h)
            ready = partner & np.isin(chal_h, label_h)
            waiting[g] = int(partner.sum() - ready.sum())
            if ready.any():
                ids = chal_h[ready]
                rows = pd.concat([chal[ready], champ[np.isin(champ_h, ids)]])
                p = J.pairs_of(
                    rows.drop(columns=["_scored", "_h", "_us"]),
                    labels[np.isin(label_h, ids)],
                    candidate=self.candidate,
                    champion=self.champion,
                    roles=(role,),
                    score=score,
                    classes=classes,
                )
                keys = chal["_entity_key"][ready]
                self.groups[g].add(p, int(ready.sum()), int(keys.notna().sum()))
                self.scored.add(ids)
                scored_now[np.flatnonzero(mine)[ready]] = True
        if scored_now.any():
            h = h.assign(_scored=h["_scored"].to_numpy() | scored_now)
        self.held = h
        pairs = J.concat(
            [g.pairs(w, self.has_call) for g, w in zip(self.groups, waiting, strict=True)]
        )
        guard = self._guarded(now, roles, champion_roles, cursor)
        self._let_go(now, roles, cursor)
        return Look(pairs, *guard, has_proba=has_proba)

    def _guarded(
        self, now: float, roles: tuple[str, ...], champion_roles: tuple[str, ...], cursor: float
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        h = self.held
        ts, seen = h["_ts"].to_numpy(), h["_us"].to_numpy() < bound_us(now)
        chal = h[(ts >= cursor) & seen & h["_role"].isin(roles).to_numpy()]
        champ = h[
            seen
            & h["_role"].isin(champion_roles).to_numpy()
            & np.isin(h["_h"].to_numpy(), chal["_h"].to_numpy())
        ]
        drop = ["_scored", "_h", "_us"]
        return chal.drop(columns=drop), champ.drop(columns=drop)

    def _let_go(self, now: float, roles: tuple[str, ...], cursor: float) -> None:
        """Drop what no later look needs (see the module docstring)."""
        h = self.held
        ts, role = h["_ts"].to_numpy(), h["_role"]
        is_chal = role.isin(CHALLENGER).to_numpy()
        guard = role.isin(roles).to_numpy() & (ts >= cursor)
        keep_chal = is_chal & (~h["_scored"].to_numpy() | guard)
        hs = h["_h"].to_numpy()
        partnered = np.isin(hs, hs[keep_chal])
        done = self.scored.holds(hs)
        old = ts < now - self.pair_wait
        keep_champ = ~is_chal & (partnered | (~done & ~old))
        let_go = ~is_chal & ~partnered & ~done & old
        self.gone.add(hs[let_go])
        self.held = h[keep_chal | keep_champ].reset_index(drop=True)
        lab = self.lab
        lh = lab["_h"].to_numpy()
        used = self.scored.holds(lh)
        wanted = np.isin(lh, self.held["_h"].to_numpy())
        stale = ~used & ~wanted & (lab["_ts"].to_numpy() < (now - self.pair_wait) * 1e6)
        self.gone.add(lh[stale])
        self.lab = lab[~used & ~stale]

    @property
    def rows_read(self) -> int:
        return self.rows.rows_read + self.labels.rows_read
