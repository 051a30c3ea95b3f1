"""The closed loop against the real one-process server on 127.0.0.1 (serving app, monitor and
controller, as ``loopml serve`` runs them), with a client predicting and labelling all along:

- decay -> retrain -> shadow -> canary -> promote: the labels start following a new rule, the
  monitor's windows show the champion's live accuracy dropping, the controller retrains on the
  fresh labelled rows, and the candidate goes through shadow and both canary steps to champion;
- a bad candidate (trained on flipped labels, which its gates do not catch) is rolled back by
  the canary guards within one controller interval of the breach being observable.

Both with 0 failed client requests. Durations are compressed (``_loop.CONFIG``).
"""

from __future__ import annotations

import time

from loopml.control import request_retrain
from tests.e2e import _loop as L


def _story(decisions: list[dict]) -> str:
    return "\n".join(
        f"  {d['actor']:>10} {d['action']:<16} {d['subject']:<12} {d['reason']}" for d in decisions
    )


def test_decay_retrain_shadow_canary_promote(project, store, versions):
    champion = versions["champion"]
    (project / "loopml.yaml").write_text(L.config_text(recent="6s"))
    start = max((d["id"] for d in store.decisions.list(limit=1)), default=0)
    with L.server(project) as (url, _app), L.Client(url) as client:
        # before the decay: judged windows of the champion, and no retraining
        L.wait_for(
            "a judged window of the champion",
            lambda: L.judged_windows(store, champion),
            30,
        )
        assert not [d for d in L.actions(store, start) if d["action"] == "retrain"]
        client.rule = "new"
        decayed_at = time.time()
        L.wait_for(
            "the decay trigger to start a retraining",
            lambda: [d for d in L.actions(store, start) if d["action"] == "retrain"],
            40,
            state=lambda: (decayed_at, L.windows(store, champion), L.actions(store, start)),
        )
        promoted = L.wait_for(
            "the candidate to be promoted",
            lambda: [d for d in L.actions(store, start) if d["action"] in ("promote", "rollback")],
            60,
            state=lambda: _story(L.actions(store, start)),
        )
        n = len(client.answers)
        L.wait_for("answers after the promotion", lambda: len(client.answers) > n + 10, 30)
    story = L.actions(store, start)
    t0 = story[0]["at"]
    print(
        f"\ntimeline (s after the first decision): decay {decayed_at - t0:+.1f}, "
        + ", ".join(
            f"{d['action']} {d['at'] - t0:.1f}"
            for d in story
            if not d["action"].startswith("status:")
        )
    )
    print(
        f"\ndecay at {decayed_at:.1f}; {len(client.answers)} requests, "
        f"{len(client.label_answers)} label posts; decisions:\n{_story(story)}"
    )
    assert promoted[0]["action"] == "promote", _story(story)
    steps = [
        d["action"]
        for d in story
        if d["actor"] == "controller" and not d["action"].startswith("status:")
    ]
    assert steps == ["retrain", "retrain-passed", "shadow", "canary", "rollout-step", "promote"], (
        steps
    )
    by = {d["action"]: d for d in story}
    # every step carries its evidence
    trig = by["retrain"]["evidence"]
    assert trig["trigger"] == "decay" and len(trig["breached"]) >= 2
    assert all(b["drop_low"] > b["threshold"] for b in trig["breached"])  # beyond an interval
    assert by["retrain"]["at"] > decayed_at
    trained = by["retrain-passed"]["evidence"]
    assert trained["recent_rows"] > 0 and trained["outcome"] == "passed" and trained["gates"]
    new = int(by["retrain-passed"]["subject"].split(":")[1])
    shadow = by["canary"]["evidence"]["quality"]  # the paired test at the end of the shadow
    assert shadow["paired_rows"] >= 200, shadow
    promo = by["promote"]["evidence"]["quality"]
    # promoted only once shown non-inferior on the same rows; it is in fact far better
    assert promo["interval"][1] < promo["margin"] and promo["estimate"] < 0, promo
    assert promo["metric"] == "roc_auc" and promo["score"] == "brier", promo
    step = by["rollout-step"]["evidence"]
    assert step["judged_batches"] >= 1 and step["last"]["verdict"]["breached"] is False
    assert by["promote"]["evidence"]["judged_batches"] >= 1
    assert store.endpoints.get(L.ENDPOINT)["champion_id"] == new
    assert store.versions.get(new)["status"] == "champion"
    served = [a.version for a in client.answers]
    assert served[0] == champion and served[-1] == new
    assert not client.failures(), client.failures()[:3]


def test_bad_canary_is_rolled_back_within_one_interval(project, store, versions):
    """A candidate trained on flipped labels passes its gates (they hold no accuracy bar) and,
    its labels arriving later than the shadow lasts, reaches the canary; the accuracy guard
    rolls it back once the labels are in."""
    champion = versions["champion"]
    text = L.config_text(recent="0s").replace(
        "train: data/train.parquet", "train: data/flipped.parquet"
    )
    (project / "loopml.yaml").write_text(text)
    interval = 0.5  # serve.controller_interval
    start = max((d["id"] for d in store.decisions.list(limit=1)), default=0)
    with L.server(project) as (url, _app), L.Client(url) as client:
        client.hold_labels = True
        request_retrain(
            store, L.ENDPOINT, actor="test", reason="e2e: a candidate trained on flipped labels"
        )
        L.wait_for(
            "the candidate to reach the canary",
            lambda: [d for d in L.actions(store, start) if d["action"] == "canary"],
            60,
            state=lambda: _story(L.actions(store, start)),
        )
        client.hold_labels = False
        rollback = L.wait_for(
            "the canary to be rolled back",
            lambda: [d for d in L.actions(store, start) if d["action"] in ("rollback", "promote")],
            60,
            state=lambda: _story(L.actions(store, start)),
        )[0]
        L.wait_for(
            "answers sent 1 s after the rollback",
            lambda: any(a.sent > rollback["at"] + 1.0 for a in client.answers),
            30,
        )
    story = L.actions(store, start)
    print(
        f"\n{len(client.answers)} requests, {len(client.label_answers)} label posts; "
        f"decisions:\n{_story(story)}"
    )
    assert rollback["action"] == "rollback", _story(story)
    steps = [
        d["action"]
        for d in story
        if d["actor"] == "controller" and not d["action"].startswith("status:")
    ]
    assert steps[:4] == ["retrain", "retrain-passed", "shadow", "canary"], steps
    # a rolled-back retraining did not help: it backs off, it does not count as a failure
    assert steps[-2:] == ["rollback", "retrain-backoff"], steps
    assert set(steps[4:-2]) <= {"guard-breach"}, steps
    # The paired test rolls it back once the labels of enough canary rows are in (the
    # champion answered the same rows off the response path).
    q = rollback["evidence"]["quality"]
    assert q["interval"][0] > q["margin"] and q["estimate"] > 0.2, q  # flipped: far worse
    assert q["requests"] >= 30 and q["rows"] <= q["paired_rows"], q  # guards.min_requests
    # observable once the labels of the rows it judged were posted
    observable = min(a.received for a in client.label_answers if a.covers >= q["span"][1])
    took = rollback["at"] - observable
    print(
        f"rollback {took * 1000:.0f} ms after its evidence was observable (controller "
        f"interval {interval * 1000:.0f} ms); {q['rows']} labelled pairs in {q['requests']} "
        "requests"
    )
    assert took <= interval + 1.0  # one interval, plus the time one pass takes on a shared box
    ep = store.endpoints.get(L.ENDPOINT)
    assert ep["champion_id"] == champion and ep["canary_id"] is None
    bad = int(story[[d["action"] for d in story].index("retrain-passed")]["subject"].split(":")[1])
    assert store.versions.get(bad)["status"] == "rolled_back"  # tried: never a candidate again
    assert bad in {a.version for a in client.answers}  # the canary did answer for a while
    late = [a.version for a in client.answers if a.sent > rollback["at"] + 0.5]
    assert late and set(late) == {champion}
    assert not client.failures(), client.failures()[:3]
