"""Helpers for the end-to-end loop tests.

- A small classification project whose label rule can change: under the ``old`` rule the label
  rises with x0, under the ``new`` rule it falls with x0 (the world changed, so the champion's
  live accuracy drops), and ``flipped`` is the old rule's opposite (to train a bad version).
- The real one-process server, ``loopml.server.compose`` (serving app, dashboard, monitor and
  controller), run by uvicorn (uvloop + httptools) on 127.0.0.1 in a thread.
- A client thread that keeps predicting (loopml JSON with ``X-Entity-Key``) and posts the
  labels of its requests a little later, recording every answer.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from tests.conftest import make_project

ENDPOINT = "loop"

TRAIN_PY = """\
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


def train(X, y, params, seed=0):
    cats = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), cats)],
                            remainder="passthrough")
    return Pipeline([("pre", pre), ("clf", LogisticRegression(C=params.get("C", 1.0)))]).fit(X, y)
"""

# Compressed durations: windows of 2 s closed 1 s after their end, a monitor pass every second,
# a controller pass every 0.5 s, log segments rolled and compacted to Parquet every 0.5 s.
CONFIG = """\
project: loop
data: {{train: data/train.parquet, target: label, id: id}}
model: {{name: loop, train: train.py:train}}
gates: {{champion: {{blocking: false}}}}
deploy:
  endpoint: loop
  expire_after: 90d
  rollout:
    shadow: {shadow}
    shadow_min_samples: 200
    steps: [50, 100]
    step_duration: {step}
    # not twice the planned 6 s: the background process runs niced, and with the suite's
    # workers busy its passes came seconds apart (a rollout that was non-inferior by far ended
    # "no verdict within 12 s" in a make test of 2026-12-06)
    max_duration: 45s
    guards:
      min_samples: 200
      consecutive: {consecutive}
      max_error_rate: 0.05
      max_p99_ms: 5000
      max_prediction_drift: null
      max_accuracy_drop: 0.1
monitor:
  window: 2s
  grace: 1s
  schedule: 1s
  min_window_rows: 100
  max_performance_drop: 0.1
retrain:
  on: [decay, manual]
  cooldown: 0s
  k: 2
  m: 2
  recent: {recent}
serve:
  auth: false
  controller_interval: 0.5s
  log_segment: 0.5s
  compact_every: 0.5s
"""


def config_text(
    *, shadow: str = "2s", step: str = "2s", consecutive: int = 1, recent: str = "1h"
) -> str:
    return CONFIG.format(shadow=shadow, step=step, consecutive=consecutive, recent=recent)


def features(n: int, rng: np.random.Generator) -> pd.DataFrame:
    out = pd.DataFrame(rng.normal(size=(n, 3)).round(4), columns=["x0", "x1", "x2"])
    out["cat"] = rng.choice(["a", "b", "c"], size=n)
    return out


def labels(X: pd.DataFrame, rule: str, rng: np.random.Generator | np.ndarray) -> np.ndarray:
    """Labels under ``rule``: 'old', 'new' (x0's effect reversed) or 'flipped' (1 - old);
    ``rng`` is a generator or the uniform draws to use."""
    sign = -1.0 if rule == "new" else 1.0
    logit = 3.0 * (sign * X["x0"].to_numpy() - X["x1"].to_numpy()) + np.where(
        X["cat"] == "a", 1.0, -1.0
    )
    u = rng.random(len(X)) if isinstance(rng, np.random.Generator) else rng
    y = (u < 1 / (1 + np.exp(-logit))).astype(int)
    return 1 - y if rule == "flipped" else y


def frame(n: int, seed: int = 0, rule: str = "old") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = features(n, rng)
    out["id"] = np.arange(n)
    out["label"] = labels(out, rule, rng)
    return out


def write_project(root: Path, config: str, *, rows: int = 300) -> Path:
    """loopml.yaml, train.py, data/train.parquet (old rule) and data/flipped.parquet."""
    make_project(root, config=config, frame=frame(rows, seed=0), train_py=TRAIN_PY)
    frame(rows, seed=1, rule="flipped").to_parquet(root / "data" / "flipped.parquet")
    return root


def train_version(
    root: Path, *, data: str | None = None, expire_after: float | None = None, **params: Any
) -> dict[str, Any]:
    """One version through the real ``loopml.train.run`` pipeline (gates included)."""
    from loopml.config import load_config
    from loopml.store import Store
    from loopml.train import run

    cfg = load_config(root)
    cfg.model.params = dict(params)
    if data is not None:
        cfg.data.train = data
    if expire_after is not None:
        assert cfg.deploy is not None
        cfg.deploy.expire_after = expire_after
    store = Store(cfg.store_url)
    try:
        result = run(cfg, store=store)
    finally:
        store.close()
    assert result.passed and result.version is not None, result.gates
    return result.version


@contextlib.contextmanager
def server(root: Path, **overrides: Any) -> Iterator[tuple[str, Any]]:
    """``loopml serve`` in a thread: ``server.compose`` (serving app, dashboard, monitor and
    controller) under uvicorn on 127.0.0.1. Yields the base URL and the app."""
    from loopml.config import load_config
    from loopml.serve import Settings
    from loopml.server import compose, serve_in_thread

    cfg = load_config(root)
    app = compose(cfg, Settings.from_config(cfg, access_log=False, **overrides))
    bg = serve_in_thread(app)
    try:
        yield bg.url, app
    finally:
        bg.stop()


@dataclass
class Answer:
    sent: float
    received: float
    status: int
    version: int | None
    body: str
    covers: float = 0.0  # label posts: the latest prediction answer whose labels they carry


class Client:
    """Keeps predicting ``rows`` rows per request at about ``rate`` requests/s, each with its
    own entity key, and posts their labels (under the current ``rule``) ``label_delay`` s after
    the answer (or, while ``hold_labels`` is set, keeps them until it is cleared: labels that
    arrive late). Every predict and label answer is recorded."""

    def __init__(
        self,
        url: str,
        *,
        rows: int = 10,
        rate: float = 60.0,
        label_delay: float = 0.2,
        seed: int = 1,
    ) -> None:
        self.url, self.rows, self.rate, self.label_delay, self.seed = (
            url,
            rows,
            rate,
            label_delay,
            seed,
        )
        self.rule = "old"
        self.hold_labels = False
        self.answers: list[Answer] = []
        self.label_answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="e2e-client", daemon=True)

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(60)

    def _post(
        self,
        c: httpx.Client,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
        into: list[Answer],
    ) -> dict[str, Any] | None:
        sent, doc = time.time(), None
        try:
            r = c.post(path, json=body, headers=headers)
            status, text = r.status_code, r.text
            if status == 200:
                doc = r.json()
        except httpx.HTTPError as e:  # a failed request, recorded as status 0
            status, text = 0, repr(e)
        into.append(
            Answer(
                sent,
                time.time(),
                status,
                doc.get("model_version") if doc else None,
                "" if status == 200 else text[:500],
            )
        )
        return doc

    def _run(self) -> None:
        # rows and their labels under each rule drawn up front: the client must cost little
        # CPU beside the server on a shared two-core box
        rng = np.random.default_rng(self.seed)
        pool = features(50_000, rng)
        u = rng.random(len(pool))
        ys = {rule: labels(pool, rule, u).tolist() for rule in ("old", "new", "flipped")}
        records = pool.to_dict("records")
        due: collections.deque[tuple[float, float, list[dict[str, Any]]]] = collections.deque()
        period = 1.0 / self.rate
        with httpx.Client(base_url=self.url, timeout=30) as c:
            i, next_at = 0, time.monotonic()
            while not self._stop.is_set():
                at = (i * self.rows) % (len(records) - self.rows)
                rows, y = records[at : at + self.rows], ys[self.rule][at : at + self.rows]
                doc = self._post(
                    c,
                    f"/v1/endpoints/{ENDPOINT}/predict",
                    {"rows": rows},
                    {"X-Entity-Key": f"e{i}"},
                    self.answers,
                )
                if doc is not None:
                    now = time.time()
                    due.append(
                        (
                            now + self.label_delay,
                            now,
                            [
                                {"request_id": r, "label": int(v)}
                                for r, v in zip(doc["request_ids"], y, strict=True)
                            ],
                        )
                    )
                ready: list[dict[str, Any]] = []
                covers = 0.0
                while due and due[0][0] <= time.time() and not self.hold_labels:
                    _, covers, items = due.popleft()
                    ready += items
                if ready:
                    self._post(c, "/v1/labels", {"labels": ready}, {}, self.label_answers)
                    self.label_answers[-1].covers = covers
                i += 1
                next_at += period
                pause = next_at - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)
                else:
                    next_at = time.monotonic()

    def failures(self) -> list[Answer]:
        return [a for a in [*self.answers, *self.label_answers] if a.status != 200]


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout: float,
    every: float = 0.1,
    state: Callable[[], Any] | None = None,
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` (and ``state()``,
    what the test saw) after ``timeout``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    seen = f"; state: {state()}" if state is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{seen}")


def windows(store: Any, version: int, role: str = "champion") -> list[tuple[Any, ...]]:
    """(start, rows, labels, performance) of a version's monitor windows, for messages."""
    return [
        (w["start"], w["rows"], w["labels"], w["performance"])
        for w in store.monitoring.series(ENDPOINT, version=version, role=role)
    ]


def judged_windows(store: Any, version: int, labels: int = 100) -> list[dict[str, Any]]:
    """The version's windows as champion with at least ``labels`` labelled rows."""
    series = store.monitoring.series(ENDPOINT, version=version, role="champion")
    return [w for w in series if w["labels"] >= labels]


def actions(store: Any, since_id: int = 0) -> list[dict[str, Any]]:
    """The endpoint's decisions after ``since_id``, oldest first."""
    rows = store.decisions.list(endpoint=ENDPOINT, limit=1000)
    return [d for d in reversed(rows) if d["id"] > since_id]
