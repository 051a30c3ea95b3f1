"""The loop end to end on a small real project (real ``loopml.train.run``, SQLite store, Parquet
logs): decay -> retrain -> shadow -> canary -> promote; the breaker; manual requests; the CLI."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from loopml.cli import main
from loopml.config import load_config
from loopml.control import Controller, request_retrain
from loopml.store import Store
from tests.conftest import CONFIG, make_project, run_project, synthetic_frame
from tests.control._log import Clock, write_pairs, write_rows

LOOP = """\
  rollout:
    shadow: 10m
    shadow_min_samples: 100
    steps: [50, 100]
    step_duration: 10m
    guards: {min_samples: 100, consecutive: 2, max_accuracy_drop: 0.1, max_prediction_drift: 0.5}
retrain:
  on: [decay, manual]
  cooldown: 1h
"""
BROKEN = CONFIG.replace("train.py:train", "train.py:broken") + LOOP.replace(
    "on: [decay, manual]\n  cooldown: 1h",
    "on: [schedule]\n  schedule: 1s\n  cooldown: 0s\n  breaker: 2",
)
STEP = 700.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose first version is the champion of endpoint 'tiny' (trained once)."""
    root = make_project(tmp_path_factory.mktemp("loop") / "proj", config=CONFIG + LOOP)
    _cfg, store, result = run_project(root)
    assert result.passed
    store.endpoints.deploy("tiny", result.version, actor="test")
    store.close()
    return root


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    shutil.copytree(trained, dest)
    return dest


def _windows(
    store: Store, champion: int, clock: Clock, n: int = 2, accuracy: float = 0.55, back: int = 0
) -> None:
    """Monitor windows (the monitor's own store API) with the given live accuracy."""
    for i in range(n):
        start = clock() - (n - i + back) * 3600.0
        store.monitoring.save_window(
            endpoint="tiny",
            version=champion,
            role="champion",
            start=start,
            end=start + 3600,
            rows=500,
            labels=500,
            metric="accuracy",
            performance=accuracy,
            accuracy=accuracy,
            log_files="f",
            label_files="l",
        )


def test_decay_retrain_shadow_canary_promote(project: Path) -> None:
    cfg = load_config(project)
    store = Store(cfg.store_url)
    clock = Clock()
    champ = store.endpoints.get("tiny")["champion_id"]
    recent = synthetic_frame(600, seed=7)
    feats = recent.drop(columns=["label", "id"])
    write_rows(
        cfg.artifacts_root,
        "tiny",
        version=champ,
        role="champion",
        start=clock() - 3000,
        n=600,
        span=2000,
        y=recent["label"].to_numpy(),
        features=feats,
        accuracy=0.6,
    )
    ctl = Controller(cfg, store, clock=clock)
    assert ctl.reconcile_once() == []  # no decay yet: nothing to do
    # its own level as champion: 0.8 over its first 1000 labelled rows
    _windows(store, champ, clock, n=2, accuracy=0.8, back=2)
    assert ctl.reconcile_once() == []  # the baseline windows themselves are not judged
    _windows(store, champ, clock, n=2, accuracy=0.55)
    ds = ctl.reconcile_once()
    assert [d["action"] for d in ds] == ["retrain", "retrain-passed", "shadow"]
    assert ds[0]["evidence"]["trigger"] == "decay" and len(ds[0]["evidence"]["breached"]) == 2
    assert ds[1]["evidence"]["recent_rows"] == 600
    cand = int(ds[1]["subject"].split(":")[1])
    assert store.runs.get(store.versions.get(cand)["run_id"])["trigger"] == "decay"
    assert ctl.reconcile_once() == []  # dedupe: the same windows do not retrain again
    write_pairs(
        cfg.artifacts_root,
        "tiny",
        champion=champ,
        shadow=cand,
        start=clock(),
        n=150,
        features=feats.head(150),
    )
    clock.advance(STEP)
    assert [d["action"] for d in ctl.reconcile_once()] == ["canary"]
    for action in ("rollout-step", "promote"):
        t = clock()
        ids, y = write_rows(cfg.artifacts_root, "tiny", version=cand, role="canary", start=t, n=120)
        write_rows(  # the champion's answers on the canary's rows (role "paired")
            cfg.artifacts_root,
            "tiny",
            version=champ,
            role="paired",
            start=t,
            n=120,
            seed=5,
            ids=ids,
            y=y,
            labels=False,
        )
        clock.advance(STEP)
        assert [d["action"] for d in ctl.reconcile_once()] == [action]
    ep = store.endpoints.get("tiny")
    assert (ep["champion_id"], ep["previous_champion_id"]) == (cand, champ)
    assert store.rollouts.retrains("tiny")[0]["outcome"] == "promoted"
    ctl.close()
    store.close()


def test_breaker_trips_after_n_failed_candidates(project: Path) -> None:
    (project / "loopml.yaml").write_text(BROKEN)
    cfg = load_config(project)
    store = Store(cfg.store_url)
    clock = Clock(time.time())  # the schedule counts from the champion's deployment (real time)
    ctl = Controller(cfg, store, clock=clock)
    clock.advance(10)
    assert [d["action"] for d in ctl.reconcile_once()] == ["retrain", "retrain-error"]
    clock.advance(10)
    ds = ctl.reconcile_once()
    assert [d["action"] for d in ds] == ["retrain", "retrain-error", "breaker-open"]
    assert len(ds[-1]["evidence"]["failures"]) == 2
    alerts = store.monitoring.alerts(rule="retrain-breaker")
    assert len(alerts) == 1 and alerts[0]["status"] == "open"
    clock.advance(10)
    ds = ctl.reconcile_once()
    assert [(d["action"], d["evidence"]["suppressed"]) for d in ds] == [
        ("trigger-suppressed", "breaker")
    ]
    assert ctl.reconcile_once() == []  # noted once
    assert len(store.runs.list()) == 3  # the champion's run and the two failed ones
    ctl.close()
    store.close()


def test_manual_request_cli_and_frozen_endpoint(
    project: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg = load_config(project)
    store = Store(cfg.store_url)
    store.endpoints.set_frozen("tiny", True, actor="test", reason="incident")
    assert main(["-c", str(project), "control", "--retrain", "tiny", "--reason", "new data"]) == 0
    assert main(["-c", str(project), "control", "--once", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    assert report == {"leader": True, "decisions": []}  # frozen: the request waits
    assert store.rollouts.retrains("tiny", status="pending")
    store.endpoints.set_frozen("tiny", False, actor="test", reason="over")
    assert main(["-c", str(project), "control", "--once", "--json"]) == 0
    out = capsys.readouterr().out
    actions = [d["action"] for d in json.loads(out[out.index("{") :])["decisions"]]
    assert actions == ["retrain", "retrain-passed", "shadow"]
    assert store.rollouts.retrains("tiny")[0]["requested_by"].startswith("cli:")
    with pytest.raises(Exception, match="No endpoint 'nope'"):
        request_retrain(store, "nope", actor="test")
    store.close()


def test_serve_service_runs_and_hands_over(project: Path) -> None:
    """The async context manager ``loopml serve`` enters: a pass runs, and leaving it frees the lock."""
    import asyncio

    from loopml.control.loop_service import controller_service

    cfg = load_config(project)
    store = Store(cfg.store_url)
    request_retrain(store, "tiny", actor="test")

    async def main_() -> str:
        async with controller_service(cfg) as ctl:
            for _ in range(400):
                if store.rollouts.active("tiny"):
                    break
                await asyncio.sleep(0.05)
            return ctl.holder

    holder = asyncio.run(main_())
    assert store.rollouts.active("tiny")  # the manual request was trained and rolled out
    assert store.locks.holder("controller") is None and holder
    store.close()


SLOWISH = '''

def slowish(X, y, params, seed=0):
    """The usual recipe, after 2.5 s: a retraining that outlasts a short lease."""
    import time

    time.sleep(2.5)
    return train(X, y, params, seed)
'''


def test_a_retraining_longer_than_the_lease_keeps_its_controller_leading(project: Path) -> None:
    """SQLite's lease is renewed while a retraining runs: another replica must not take over
    from a controller that is alive and training (two would act at once)."""
    import threading

    (project / "train.py").write_text((project / "train.py").read_text() + SLOWISH)
    text = (project / "loopml.yaml").read_text().replace("train.py:train", "train.py:slowish")
    (project / "loopml.yaml").write_text(text)
    cfg = load_config(project)
    store = Store(cfg.store_url)
    a = Controller(cfg, store, holder="ctl-a")
    b = Controller(cfg, store, holder="ctl-b")
    a.leadership.ttl = b.leadership.ttl = 0.6
    request_retrain(store, "tiny", actor="test")
    got: list = []
    run = threading.Thread(target=lambda: got.extend(a.reconcile_once()))
    run.start()
    tries = 0
    while run.is_alive():
        time.sleep(0.2)
        assert b.reconcile_once() == [], (
            "another replica took over from a controller still training"
        )
        tries += 1
    run.join()
    assert tries >= 8  # B tried for the whole retraining (2.5 s, four leases long)
    assert [d["action"] for d in got] == ["retrain", "retrain-passed", "shadow"]
    assert store.locks.holder("controller") == "ctl-a"
    a.close()
    b.close()
    store.close()


WEAK = '''

def weak(X, y, params, seed=0):
    """A recipe that learns from one uninformative column: never better than the champion."""
    one = ColumnTransformer([("x5", "passthrough", ["x5"])])
    return Pipeline([("one", one), ("clf", LogisticRegression())]).fit(X, y)
'''


def test_decayed_champion_with_no_better_candidate_backs_off(project: Path) -> None:
    """Regression (issue 11): retrainings that do not beat the champion are no failures. They
    back the cooldown off (doubling) and never open the breaker."""
    (project / "train.py").write_text((project / "train.py").read_text() + WEAK)
    text = (project / "loopml.yaml").read_text().replace("train.py:train", "train.py:weak")
    (project / "loopml.yaml").write_text(text + "  breaker: 2\ngates:\n  champion: {}\n")
    cfg = load_config(project)
    store = Store(cfg.store_url)
    clock = Clock()
    champ = store.endpoints.get("tiny")["champion_id"]
    ctl = Controller(cfg, store, clock=clock)
    _windows(store, champ, clock, n=2, accuracy=0.8, back=2)
    _windows(store, champ, clock, n=2, accuracy=0.55)
    ds = ctl.reconcile_once()
    assert [d["action"] for d in ds] == ["retrain", "retrain-not-better", "retrain-backoff"], ds[1][
        "reason"
    ]
    assert "a fresh model does not help on recent data" in ds[1]["reason"]
    assert ds[2]["evidence"]["cooldown"] == 7200.0  # 1 h doubled
    for wait, expect in ((3700, "trigger-suppressed"), (3700, "retrain"), (14500, "retrain")):
        clock.advance(wait)
        _windows(store, champ, clock, n=1, accuracy=0.55)
        ds = ctl.reconcile_once()
        assert ds[0]["action"] == expect, ds[0]["reason"]
        if expect == "trigger-suppressed":
            assert "backed off" in ds[0]["reason"], ds[0]["reason"]
        else:
            assert [d["action"] for d in ds][1:] == ["retrain-not-better", "retrain-backoff"]
    assert ds[-1]["evidence"]["cooldown"] == 3600.0 * 8  # three in a row
    assert not store.monitoring.alerts(rule="retrain-breaker")
    assert not [d for d in store.decisions.list(endpoint="tiny") if d["action"] == "breaker-open"]
    ctl.close()
    store.close()
