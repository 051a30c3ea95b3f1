"""The rollout's quality judgement: challenger vs champion on the same rows, as a sequential test.

Every challenger row of a rollout also has the champion's answer under the same request id
(in shadow the champion answers and the shadow is mirrored; on a canary step the champion
scores the canary's rows off the response path, role ``paired``). Once a row's label arrives,
both get a per-row loss (``evaluate.rowloss``: the score that stands for the endpoint's
decision metric), and the row contributes ``loss_challenger - loss_champion`` to its cluster:
the request it came in (``_call``), or its entity key when routing is sticky (every request of
a key goes to the same side, so the key is the unit that was randomised).

``judge`` reads the confidence sequence (``stats.sequential.paired_cs``) of the mean
difference at this look: ``worse`` when its low end is above the margin (the challenger loses
more than ``margin`` per row: roll back), ``non_inferior`` when its high end is below the
margin, else ``undecided``; ``insufficient`` below ``guards.min_requests`` clusters. The
sequence is anytime-valid, so judging at every controller pass keeps the false rollback rate
of a whole rollout at ``guards.alpha`` or less (tests/control/test_judgement.py measures it on
replayed survey rows).

Pure functions of a frame of rows and a label map: the simulation in the tests and the
backtest call the same code as the controller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopml.config import GuardsConfig
from loopml.evaluate.measure.rowloss import NEEDS_PROBA, default_margin, row_loss
from loopml.stats.sequential import paired_cs

TEST = (
    "paired difference of per-row {score}, clustered by {unit}; anytime-valid asymptotic "
    "confidence sequence (Waudby-Smith et al. 2024), alpha {alpha:g}"
)


@dataclass
class Pairs:
    """Labelled rows scored by both versions: one loss difference per row, and its cluster."""

    cluster: np.ndarray
    diff: np.ndarray
    champion_loss: np.ndarray
    ts: np.ndarray
    unit: str = "request"
    paired: int = 0  # rows with both answers (labelled or not)

    @property
    def rows(self) -> int:
        return len(self.diff)


def concat(parts: list[Pairs]) -> Pairs:
    """One set of pairs from several (the shadow's and the canary steps')."""
    cat = [np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS]
    unit = next((p.unit for p in reversed(parts) if p.rows), parts[0].unit)
    return Pairs(cat[0], cat[1], cat[2], cat[3], unit=unit, paired=sum(p.paired for p in parts))


FIELDS = ("cluster", "diff", "champion_loss", "ts")


@dataclass
class Quality:
    outcome: str  # insufficient | undecided | worse | non_inferior
    evidence: dict[str, Any] = field(default_factory=dict)


def _cluster_keys(frame: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Per row: its entity key when routing was sticky, else the request it came in."""
    n = len(frame)
    call = frame["_call"] if "_call" in frame else pd.Series([None] * n, index=frame.index)
    call = call.fillna(frame["_request_id"]).astype(str)
    keys = frame.get("_entity_key", None)
    if keys is None or not keys.notna().any():
        unit = "request" if "_call" in frame else "row (the log records no requests)"
        return ("c:" + call).to_numpy(), unit
    out = np.where(keys.notna(), "k:" + keys.astype(str), "c:" + call)
    return out, "entity key" if keys.notna().all() else "entity key or request"


def pairs_of(
    rows: pd.DataFrame,
    labels: pd.Series,
    *,
    candidate: int,
    champion: int | None,
    roles: tuple[str, ...],
    score: str,
    classes: list[Any] | None,
) -> Pairs:
    """The challenger's rows (``roles``) joined with the champion's answers on the same
    request ids, and the labels that arrived, as per-row loss differences."""
    empty = Pairs(np.empty(0, dtype=object), np.empty(0), np.empty(0), np.empty(0))
    if champion is None or not len(rows):
        return empty
    chal = rows[(rows["_version"] == candidate) & rows["_role"].isin(roles)]
    champ = rows[(rows["_version"] == champion) & rows["_role"].isin(("champion", "paired"))]
    keep = [c for c in ("_request_id", "_prediction", "_proba") if c in champ]
    pairs = chal.merge(
        champ[keep].drop_duplicates("_request_id"), on="_request_id", suffixes=("", "_p")
    )
    if not len(pairs):
        return empty
    y = labels.reindex(pairs["_request_id"].to_numpy())
    have = y.notna().to_numpy()
    lab = pairs[have]
    if not len(lab):
        return Pairs(empty.cluster, empty.diff, empty.champion_loss, empty.ts, paired=len(pairs))
    yv = y[have].to_numpy()

    def loss(pred: str, proba: str) -> np.ndarray:
        pr = lab[proba].to_numpy() if proba in lab and score in NEEDS_PROBA else None
        return row_loss(score, yv, lab[pred].to_numpy(), pr, classes)

    lc, lp = loss("_prediction", "_proba"), loss("_prediction_p", "_proba_p")
    ok = np.isfinite(lc) & np.isfinite(lp)
    cluster, unit = _cluster_keys(lab)
    p = Pairs(
        cluster[ok],
        (lc - lp)[ok],
        lp[ok],
        lab["_ts"].to_numpy(dtype=float)[ok],
        unit=unit,
        paired=len(pairs),
    )
    return ordered(p)


def order_of(ts: np.ndarray, diff: np.ndarray, champion_loss: np.ndarray) -> np.ndarray:
    """The canonical order of pairs: by log time, then by their values. Sums of floats
    depend on their order; in this order the per-cluster sums and the mean ``judge`` takes
    come out the same bit for bit however the rows were read (from which parts and segments,
    in one read or many: ``control.rollout_memory``). Rows tied on all three keys have the
    same values, so their order changes no sum."""
    return np.lexsort((champion_loss, diff, ts))


def ordered(p: Pairs) -> Pairs:
    """``p`` in the canonical order (:func:`order_of`)."""
    o = order_of(p.ts, p.diff, p.champion_loss)
    return Pairs(p.cluster[o], p.diff[o], p.champion_loss[o], p.ts[o], unit=p.unit, paired=p.paired)


def judge(g: GuardsConfig, pairs: Pairs, *, metric: str, score: str) -> Quality:
    """This look of the sequential test; see the module docstring."""
    margin = g.margin
    if margin is None:
        base = float(pairs.champion_loss.mean()) if pairs.rows else None
        margin = default_margin(score, base)
    ev: dict[str, Any] = {
        "metric": metric,
        "score": score,
        "test": TEST.format(score=score, unit=pairs.unit, alpha=g.alpha),
        "alpha": g.alpha,
        "margin": margin,
        "rows": pairs.rows,
        "paired_rows": pairs.paired,
        "unit": pairs.unit,
    }
    if pairs.rows:
        ev["span"] = [float(pairs.ts.min()), float(pairs.ts.max())]
    codes, inverse = np.unique(pairs.cluster, return_inverse=True)
    ev["requests"] = len(codes)
    if len(codes) < g.min_requests:
        ev["why"] = f"{len(codes)} of {g.min_requests} requests with labelled pairs"
        return Quality("insufficient", ev)
    sums = np.bincount(inverse, weights=pairs.diff, minlength=len(codes))
    counts = np.bincount(inverse, minlength=len(codes)).astype(float)
    cs = paired_cs(sums, counts, alpha=g.alpha)
    ev.update(
        estimate=cs.estimate,
        interval=[cs.low, cs.high],
        champion_loss=float(pairs.champion_loss.mean()),
        challenger_loss=float(pairs.champion_loss.mean() + cs.estimate),
    )
    if cs.low > margin:
        return Quality("worse", ev)
    if cs.high < margin:
        return Quality("non_inferior", ev)
    return Quality("undecided", ev)


def describe(q: Quality) -> str:
    """One line for a decision's reason: what the interval says, in the score's units."""
    e = q.evidence
    if "interval" not in e:
        return f"{e['score']}: {e.get('why', 'no labelled pairs yet')}"
    lo, hi = e["interval"]
    return (
        f"{e['score']} challenger - champion {e['estimate']:+.4f} "
        f"[{lo:+.4f}, {hi:+.4f}] on {e['rows']} labelled rows in {e['requests']} "
        f"{'requests' if e['unit'] == 'request' else e['unit'] + 's'} (margin {e['margin']:.4g})"
    )
