"""``loopml demo``: the closed loop on the ACS employment data (Massachusetts, 2015 -> 2018).

The story, told as it happens, with time compressed (one survey month = one monitor window
of a few seconds):

1. train on 2015 through the gates and deploy the model as champion;
2. replay the real 2016-2018 surveys through the real HTTP API, the true labels arriving one
   window late; the monitor watches drift, data quality, live and estimated accuracy;
3. one month (2017-03) an upstream encoding fault sends age in months: a data-quality alert,
   and no retraining on broken data; a client's malformed requests are refused with a 4xx;
4. from 2018 a *simulated* policy change (disclosed as such: the survey itself is stable)
   keeps most people aged 55-74 in work, so the 2015 model's live accuracy decays; the
   controller retrains on the fresh labelled months, the challenger passes its gates and goes
   shadow -> canary -> champion;
5. an engineer then rolls out a stale experiment trained on 2015 only, which passed its gates
   offline; the rollout guards see it answer labelled requests less accurately than the
   champion and roll it back: in shadow when the labels of its shadowed requests arrive in
   time, else at its first canary step (labels come one window late, so timing decides);
6. the decisions log tells the whole story;
7. a crash drill: ``loopml serve`` is killed with SIGKILL under load, and every prediction it
   had answered is read back from the log;
8. the payoff in numbers: the live accuracy of what the loop served against the first model
   left alone, on the same rows and labels. The demo then exits, or with ``--serve`` keeps
   the server and dashboard up until Ctrl-C (said at the start and at the end).

Each run starts from a fresh project (an earlier demo's store in the same folder is removed
first), so two runs tell the same story.

Only step 4's labels and step 3's one month of inputs are altered; everything else is the
survey as published.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from loopml.demo.drills import broken_requests, kill_under_load, missing_from_log
from loopml.demo.folder import MARKER, fresh_project, loopml_command
from loopml.demo.narrator import Narrator
from loopml.demo.payoff import tell_payoff
from loopml.demo.replay import PER_MONTH, Replay, months, policy_change
from loopml.logs.layout import log_location

WINDOW = 5.0  # seconds per survey month
DEMO_SETTINGS = f"""
# ---- time compressed for the demo: one survey month = one {WINDOW:g}-second window ----
monitor:
  window: {WINDOW:g}s
  grace: 1.5s
  schedule: 1s
  min_window_rows: 300
  max_performance_drop: 0.03
retrain:
  on: [decay, manual]
  cooldown: 60s
  recent: 20s               # about the last four survey months
  include_original: false   # the world changed: learn from the fresh labelled months
  holdout: 0.3
  k: 2
  m: 3
serve:
  controller_interval: 1s
  log_segment: 1s
  compact_every: 1s
  max_batch_wait_ms: 1
"""
DEPLOY = """
deploy:
  endpoint: employment
  metric: accuracy   # the one decision metric: champion gate, paired rollout test, decay
  rollout:
    shadow: 4s
    shadow_min_samples: 500
    steps: [25, 100]
    step_duration: 4s
    # labels arrive within a window here, so live accuracy guards the rollout; prediction
    # drift against the champion would punish a retrain that learned a changed world
    guards: {max_error_rate: 0.01, max_p99_ms: 2000, margin: 0.02, max_prediction_drift: null,
             consecutive: 2, min_samples: 300}
  expire_after: 90d
"""
FAULT_MONTH = (2017, 3)
SHIFT_FROM = 2018
EXPERIMENT_AT = (2018, 7)
EXPERIMENT_PARAMS = {
    "max_iter": 100,
    "learning_rate": 0.1,
    "max_leaf_nodes": 15,
}  # earliest month for the stale experiment's rollout (after a promotion)


def _write_config(dest: Path) -> None:
    text = (dest / "loopml.yaml").read_text()
    head, _, _ = text.partition("\ndeploy:")
    (dest / "loopml.yaml").write_text(head.rstrip() + "\n" + DEPLOY + DEMO_SETTINGS)


def _start_server(cfg: Any) -> Any:
    """The composed server (API, dashboard, monitor, controller) on a thread, once ready."""
    import logging

    import httpx

    from loopml.serve.settings import Settings
    from loopml.server import compose, configure_logging, serve_in_thread

    configure_logging(access_log=False)
    logging.getLogger("loopml.serve").setLevel(logging.WARNING)
    bg = serve_in_thread(compose(cfg, Settings.from_config(cfg, access_log=False)))
    for _ in range(600):  # started; wait until every endpoint's models are loaded
        try:
            if httpx.get(f"{bg.url}/v2/health/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return bg


def run_demo(dest: Path, *, serve: bool = False) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the server, monitor and trainer share 2 cores
    import numpy as np
    from rich.console import Console

    from loopml.config import load_config
    from loopml.examples.employment import load_years, write_project
    from loopml.progress import ConsoleSteps
    from loopml.store import Store
    from loopml.train import run
    from loopml.train.outcome import print_run

    console = Console(highlight=False)
    t_start = time.perf_counter()
    console.rule("[bold]loopml demo · ACS employment, Massachusetts 2015-2018")
    with console.status("Writing the example project and its data ..."):
        removed = fresh_project(dest)
        write_project(dest)
        _write_config(dest)
        (dest / MARKER).write_text("written by 'loopml demo'; emptied by its next run\n")
    console.print(
        f"Project in [bold]{dest.resolve()}[/] (loopml.yaml, train.py, data/), with a fresh store "
        f"in {dest.resolve() / '.loopml'}"
        + (" (the earlier demo's project there was removed first)." if removed else ".")
    )
    console.print(
        "The story takes about 4 minutes, then the demo exits"
        + (
            "; [bold]--serve[/]: it then keeps the server and dashboard running until Ctrl-C."
            if serve
            else " (add --serve to keep the dashboard up after it)."
        )
    )
    cfg = load_config(dest)
    store = Store(cfg.store_url)

    console.rule("1 · Train on 2015, through the gates")
    result = run(cfg, store=store, steps=ConsoleSteps(console), trigger="demo", actor="demo")
    print_run(cfg, result, console)
    if not result.passed:
        console.print("[red]The 2015 model did not pass its gates; the demo stops here.[/]")
        return 1
    v1 = result.version
    assert v1 is not None  # a passing run always registers a version
    store.endpoints.deploy("employment", v1, actor="demo", reason="first champion")
    console.print(f"Deployed version {v1['id']} as champion of endpoint 'employment'.")

    console.print(
        "Meanwhile an engineer trains an experiment on the same 2015 extract "
        f"(smaller trees: {EXPERIMENT_PARAMS['max_leaf_nodes']} leaves instead of 31) ..."
    )
    exp_cfg = cfg.model_copy(deep=True)
    exp_cfg.model.params = dict(EXPERIMENT_PARAMS)
    exp_cfg._source, exp_cfg._lines = cfg._source, cfg._lines
    experiment = run(exp_cfg, store=store, trigger="manual", actor="engineer").version
    assert experiment is not None
    console.print(
        f"  version {experiment['id']}: {experiment['status']} "
        f"(accuracy {experiment['metrics']['accuracy']:.3f} offline)"
    )

    console.rule("2 · Serve, and replay 2016-2018 through the HTTP API")
    bg = _start_server(cfg)
    base = bg.url
    key, _ = store.keys.create("admin", name="demo", actor="demo")
    years = load_years()
    features = list(
        v1["signature"]["columns"][i]["name"] for i in range(len(v1["signature"]["columns"]))
    )
    replay = Replay(base, key, features)
    from loopml.ui.usage import training_ranges

    narrator = Narrator(console, store, training_ranges(cfg, v1))
    rng = np.random.default_rng(7)
    console.print(
        f"Server on {base}; each survey month ({PER_MONTH:,} interviews) is one "
        f"{WINDOW:g}-second window, sent as HTTP requests of 200 rows; labels arrive one "
        "window late. Columns: traffic split; then the champion's latest monitored month: "
        "live accuracy (labels), estimated accuracy (CBPE, without labels), dataset drift "
        "share.\n"
    )
    experiment_started = False
    next_tick = (time.time() // WINDOW + 1) * WINDOW

    def schedule() -> Any:
        for year in (2016, 2017, 2018):
            yield from months(years[year], year)
        # epilogue: more 2018-like traffic (fresh samples of the 2018 survey, same simulated
        # shift) until the engineer's rollout has been decided, at most 12 more months
        extra = months(years[2018].sample(frac=1.0, random_state=2019), 2019)
        for ym, month in extra:
            if experiment_started and not store.rollouts.active("employment"):
                return
            yield ym, month

    for ym, month in schedule():
        year = ym[0]
        time.sleep(max(0.0, next_tick - time.time()))
        next_tick += WINDOW
        replay.post_labels()  # last month's truth arrives now
        note = ""
        send = month
        labels = month["employed"].to_numpy()
        if ym == FAULT_MONTH:
            send = month.assign(AGEP=month["AGEP"] * 12)
            note = "[magenta]fault: AGEP in months[/]"
        if year >= SHIFT_FROM:
            labels = policy_change(month, rng)
            note = note or (
                "[yellow]simulated shift[/]"
                if year == SHIFT_FROM
                else "[yellow]2018 resampled, simulated shift[/]"
            )
        promoted = store.endpoints.get("employment")["champion_id"] != v1["id"]
        if (
            ym >= EXPERIMENT_AT
            and promoted
            and not experiment_started
            and experiment["status"] == "candidate"
            and not store.rollouts.active("employment")
        ):
            from loopml.control import start_rollout

            start_rollout(
                cfg,
                store,
                "employment",
                store.versions.get(experiment["id"]),
                actor="engineer",
                evidence={"note": "stale experiment trained on 2015 only"},
            )
            experiment_started = True
            console.print(
                f"      [cyan]▶ engineer rolls out experiment v{experiment['id']} "
                "(trained on 2015 only; passed its gates offline)[/]"
            )
        narrator.sent_at.append((time.time(), ym))
        replay.send(send, labels, ym=ym)
        narrator.month(ym, len(month), note)
        if ym == FAULT_MONTH:  # another client's requests are malformed, not just odd
            for line in broken_requests(replay.http, month[features].iloc[0].to_dict()):
                console.print(f"      [magenta]✗ {line}[/]")
        narrator.events()
    for _ in range(int(6 * WINDOW)):  # let the last rollout steps and windows settle
        time.sleep(1)
        replay.post_labels()
        narrator.events()
        if not store.rollouts.active("employment"):
            break

    console.rule("3 · What happened")
    ep = store.endpoints.get("employment")
    console.print(
        f"HTTP requests: {replay.sent:,} answered ({replay.rows:,} rows predicted), "
        f"{replay.failed} refused. Champion now: version {ep['champion_id']}."
    )
    interesting = (
        "deploy",
        "retrain",
        "retrain-passed",
        "shadow",
        "canary",
        "promote",
        "rollback",
        "rollout-step",
        "breaker-open",
    )
    for d in reversed(store.decisions.list(limit=500)):
        if d["action"] in interesting or d["action"].startswith(("rollout", "guard")):
            console.print(f"  #{d['id']:<4} {d['actor']:<12} {d['action']:<16} {d['reason'][:110]}")
    console.print(
        f"\nEvery decision with its evidence: {loopml_command()} -c {dest} decisions --json"
    )

    console.rule("4 · Crash drill: kill -9 the server under load")
    bg.stop()
    sample = years[2018][features].sample(2000, random_state=3).to_dict("records")
    with console.status("loopml serve in a child process, 4 clients, then SIGKILL ..."):
        acked, cut = kill_under_load(dest, key, sample)
    lost = missing_from_log(log_location(cfg), acked)
    console.print(
        f"{len(acked):,} predictions were answered (HTTP 200) before the SIGKILL; {cut} requests "
        f"in flight got no answer. Read back from the prediction log after the crash: "
        f"{len(acked) - len(lost):,} of the {len(acked):,} answered, "
        + ("[green]nothing lost[/]." if not lost else f"[red]{len(lost)} missing[/].")
    )
    t = time.perf_counter()
    bg = _start_server(cfg)
    console.print(f"Restarted on the same log in {time.perf_counter() - t:.1f} s.")

    console.rule("5 · The payoff")
    tell_payoff(console, cfg, v1, replay.answered, since=(SHIFT_FROM, 1))
    console.print(f"Took {time.perf_counter() - t_start:.0f} s.")
    cmd = loopml_command()
    console.print(
        f"\nLook around: {cmd} -c {dest} versions (or decisions, or describe employment)"
        + (
            "\n(loopml is not on your PATH: run it by that full path, or activate the "
            f"virtualenv first: source {Path(sys.executable).parent / 'activate'})"
            if cmd != "loopml"
            else ""
        )
    )
    if not serve:
        bg.stop()
        console.print(
            f"Dashboard and API: run {cmd} -c {dest} serve, or the demo again with --serve."
        )
        return 1 if lost else 0
    console.print(
        f"\nStill serving (--serve): dashboard at [bold]{bg.url}/[/]; sign in with the admin "
        "key below. [bold]Ctrl-C stops.[/]"
    )
    console.print(key)
    try:
        while bg.thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        bg.stop()
    return 0
