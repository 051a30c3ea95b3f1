"""Retraining triggers, and the rules that keep them from thrashing.

Triggers (``retrain.on``), each read from what is already stored:

- ``decay``: the champion's live performance (``monitor_windows.performance``, once labels
  arrived) or, before labels, its estimated performance, fell more than
  ``monitor.max_performance_drop`` below its own level as champion, beyond an interval
  (``control.decay``), in ``retrain.k`` of the last ``retrain.m`` judged monitor windows;
- ``drift``: the dataset drift share (``drift_score``) is at least ``monitor.drift_share`` in
  k of the last m windows;
- ``quality``: data-quality errors in k of the last m windows;
- ``schedule``: ``retrain.schedule`` elapsed since the last retraining (or since the champion
  was deployed);
- ``labels``: ``retrain.min_new_labels`` labels arrived since then;
- ``manual``: a pending request (``loopml control --retrain ENDPOINT``).

Each window is judged with the monitor's own rule (``loopml.monitor.breaches.judge``), so an
alert and a trigger never disagree about a window. Persistence (k of m) guards against
one-window noise and repeated looks (docs/design/measurements.md, "Drift"); then, for
automatic triggers, in order: dedupe (the same evidence fires once: a trigger carries a key, e.g. the newest window it
judged), the breaker (``retrain.breaker`` retrainings in a row *failed*: errors, or gates that
failed on something other than the champion comparison), cooldown (``retrain.cooldown`` since
the last retraining started, doubled for every retraining in a row that did not help: a
candidate no better than the champion, rolled back or inconclusive) and the daily budget
(``retrain.budget_per_day`` starts in 24 h). A manual request is an explicit human decision
and passes these three; it still waits for a rollout in progress.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopml.config import AlertRule
from loopml.control import decay as D
from loopml.control.context import Context
from loopml.monitor.breaches import judge
from loopml.store.rollouts import FAILED_OUTCOMES
from loopml.store.rows import VersionRow, WindowSummary

DAY = 86400.0
WINDOWS = 50  # how many recent monitor windows are read


@dataclass
class Trigger:
    name: str
    key: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    request_id: int | None = None  # the pending request row (manual triggers)


def _k_of_m(ctx: Context, rows: list[WindowSummary], verdict: Any) -> tuple[bool, dict[str, Any]]:
    r = ctx.cfg.retrain
    judged = [(row, v) for row in rows if (v := verdict(row))[0] is not None][-r.m :]
    hits = [(row, v) for row, v in judged if v[0]]
    ev = {
        "k": r.k,
        "m": r.m,
        "windows": [row["id"] for row, _ in judged],
        "breached": [{"window": row["id"], "start": row["start"], **v[1]} for row, v in hits],
    }
    return len(hits) >= r.k, ev


def _window_triggers(ctx: Context, endpoint: str, champion: VersionRow) -> list[Trigger]:
    cfg, on = ctx.cfg, ctx.cfg.retrain.on
    rows = ctx.store.monitoring.series(
        endpoint, version=champion["id"], role="champion", limit=WINDOWS
    )
    if not rows:
        return []
    baseline = champion["metrics"]
    out = []
    newest = rows[-1]["start"]

    def rule(name: str) -> AlertRule:
        return AlertRule(name=f"retrain-{name}", on=name, k=1, m=1)

    if "decay" in on:
        history = ctx.store.monitoring.series(endpoint, version=champion["id"], role="champion")
        bases = {c: D.baseline(cfg, history, c, n) for c, n, _ in D.SOURCES}

        def decay(row: dict[str, Any]) -> tuple[bool | None, dict[str, Any]]:
            metric = row["metric"] or cfg.monitor.performance_metric or "accuracy"
            for column, count, source in D.SOURCES:
                base = bases[column]
                if base is not None:
                    v = D.judge(cfg, row, base, column, count, metric)
                    if v[0] is not None:
                        return v[0], {**v[1], "source": source}
            return None, {}

        fire, ev = _k_of_m(ctx, rows, decay)
        if fire:
            first = ev["breached"][0]
            out.append(
                Trigger(
                    "decay",
                    f"decay:v{champion['id']}:w{newest}",
                    f"{first['metric']} of version {champion['id']} fell more than "
                    f"{cfg.monitor.max_performance_drop} below its own level as champion "
                    f"({first['baseline']:.4f}, {first['baseline_source']}) in "
                    f"{len(ev['breached'])} of the last {len(ev['windows'])} windows, "
                    "beyond a one-sided 95% interval",
                    ev,
                )
            )
    for name, what in (("drift", "dataset drift share"), ("quality", "data-quality errors")):
        if name in on:
            fire, ev = _k_of_m(ctx, rows, lambda row, n=name: judge(rule(n), row, cfg, baseline))
            if fire:
                out.append(
                    Trigger(
                        name,
                        f"{name}:v{champion['id']}:w{newest}",
                        f"{what} past its threshold in {len(ev['breached'])} of the last "
                        f"{len(ev['windows'])} windows",
                        ev,
                    )
                )
    return out


def _since(ctx: Context, endpoint: str, champion: VersionRow) -> float:
    """When the current data era began: the last retraining started, else the champion's
    deployment (its last status change)."""
    last = ctx.store.rollouts.last_started(endpoint)
    started = last["started_at"] if last else None
    t = champion["status_changed_at"]
    return max(t, started) if started is not None else t


def fired(ctx: Context, endpoint: str, champion: VersionRow) -> list[Trigger]:
    """Triggers that fire now for ``endpoint`` (manual first), before cooldown and the rest."""
    store, on, now = ctx.store, ctx.cfg.retrain.on, ctx.clock()
    out = [
        Trigger(
            "manual",
            f"manual:{r['id']}",
            r["reason"],
            {"requested_by": r["requested_by"]},
            request_id=r["id"],
        )
        for r in reversed(store.rollouts.retrains(endpoint, status="pending", trigger="manual"))
    ]
    out += _window_triggers(ctx, endpoint, champion)
    since = _since(ctx, endpoint, champion)
    if "labels" in on:
        from loopml.control.samples import read_label_map

        n = len(read_label_map(ctx.root, endpoint, since, now))
        if n >= ctx.cfg.retrain.min_new_labels:
            out.append(
                Trigger(
                    "labels",
                    f"labels:since:{since}",
                    f"{n} new labels since the last "
                    f"retraining (at least {ctx.cfg.retrain.min_new_labels})",
                    {"labels": n, "since": since},
                )
            )
    every = ctx.cfg.retrain.schedule
    if "schedule" in on and every and now - since >= every:
        out.append(
            Trigger(
                "schedule",
                f"schedule:since:{since}",
                f"{now - since:.0f} s since the last retraining (schedule {every:g} s)",
                {"since": since, "every": every},
            )
        )
    return out


def suppressed(ctx: Context, endpoint: str, trig: Trigger) -> tuple[str, str] | None:
    """Why an automatic trigger may not start a retraining now: (kind, sentence), or None."""
    if trig.name == "manual":
        return None
    store, r, now = ctx.store, ctx.cfg.retrain, ctx.clock()
    if any(
        x["status"] != "suppressed"
        for x in store.rollouts.retrains(endpoint, key=trig.key, limit=20)
    ):
        return "dedupe", "this evidence already started a retraining"
    fails = store.rollouts.failures_in_a_row(endpoint)
    if len(fails) >= r.breaker:
        return "breaker", (
            f"breaker open: the last {len(fails)} retrainings failed "
            f"({', '.join(str(f['outcome']) for f in fails[: r.breaker])}); a "
            f"manual retrain that is promoted closes it"
        )
    last = store.rollouts.last_started(endpoint)
    started_at = last["started_at"] if last else None
    wait, tries = cooldown(ctx, endpoint)
    if started_at is not None and now - started_at < wait:
        why = (
            f" (backed off: the last {tries} retraining(s) did not help on recent data)"
            if tries
            else ""
        )
        return "cooldown", (
            f"cooldown: the last retraining started {now - started_at:.0f} s "
            f"ago (cooldown {wait:g} s{why})"
        )
    started = store.rollouts.started_since(endpoint, now - DAY)
    if started >= r.budget_per_day:
        return "budget", f"daily budget used: {started} of {r.budget_per_day} retrainings in 24 h"
    return None


def cooldown(ctx: Context, endpoint: str) -> tuple[float, int]:
    """The cooldown now, and how many retrainings in a row did not help: each one that did
    not (candidate not better, rolled back, inconclusive) doubles it, up to max_backoff."""
    r = ctx.cfg.retrain
    tries = len(ctx.store.rollouts.no_help_in_a_row(endpoint))
    return r.cooldown * min(2.0**tries, r.max_backoff), tries


def breaker_tripped_now(ctx: Context, endpoint: str, outcome: str) -> bool:
    """True when this failed outcome is the one that opens the breaker."""
    return (
        outcome in FAILED_OUTCOMES
        and len(ctx.store.rollouts.failures_in_a_row(endpoint)) == ctx.cfg.retrain.breaker
    )
