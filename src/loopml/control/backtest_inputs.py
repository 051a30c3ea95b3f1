"""What a backtest starts from: its options, a sandbox (a throwaway store and artifact root,
never the project's live ones, and no alert webhooks), the history read, cut to
``--from``/``--to`` and typed as the model expects, and the first champion trained through
``loopml.train.run`` and deployed. ``control.backtest`` replays from there.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopml.config import Config
from loopml.control.history import event_seconds
from loopml.control.simserve import SimServing
from loopml.control.timeline import iso_z
from loopml.data.signature import Signature
from loopml.data.sources import load_frame
from loopml.errors import DataError, LoopmlError, UsageError
from loopml.progress import Steps
from loopml.store import Store

ACTOR = "backtest"


class GatesFailedError(LoopmlError, RuntimeError):
    """The first champion of a backtest did not pass its gates."""

    exit_code = 1


@dataclass
class BacktestOptions:
    """How to replay. Times and ``label_delay`` are in history time (UNIX seconds)."""

    label_delay: float | None = None  # None: one monitor window of history
    start: float | None = None
    end: float | None = None
    per_window: float | None = None  # history one monitor window stands for; None: 1:1
    tick: float | None = None  # virtual seconds between controller passes
    dir: Path | None = None  # keep the throwaway store here (must be new or empty)
    seed: int = 0
    max_request_rows: int = 200


def workspace(cfg: Config, opts: BacktestOptions) -> tuple[Config, Path, bool]:
    if opts.dir is not None:
        work = Path(opts.dir).expanduser().resolve()
        if work.exists() and any(work.iterdir()):
            raise UsageError(
                f"--dir {work} is not empty. A backtest writes a fresh store there: give a new "
                "or empty folder (or leave --dir out for a temporary one).",
                field="dir",
            )
        work.mkdir(parents=True, exist_ok=True)
        keep = True
    else:
        work, keep = Path(tempfile.mkdtemp(prefix="loopml-backtest-")), False
    return sandbox_config(cfg, work), work, keep


def sandbox_config(cfg: Config, work: Path) -> Config:
    """``cfg`` writing only under ``work``: its own store and artifact root, and no alert
    webhooks (a replay of last year must not page anyone; its alerts stay in its store)."""
    sim = cfg.model_copy(deep=True)
    sim.store = f"sqlite:///{work / 'loopml.db'}"
    sim.artifacts = str(work / "artifacts")
    sim.monitor.webhooks = []
    for rule in sim.monitor.alerts:
        rule.webhook = None
    sim._source, sim._lines = cfg._source, cfg._lines
    return sim


def typed_as(frame: Any, signature: Signature) -> Any:
    """The history's category columns as the signature's categories are typed: a CSV holds no
    types, so codes such as 1, 2 read back as numbers where the model was trained on "1", "2"."""
    frame = frame.copy()
    for c in signature.columns:
        cats = c.categories or ()
        if c.kind == "category" and cats and all(isinstance(v, str) for v in cats):
            col = frame[c.name]
            if not pd.api.types.is_string_dtype(col) or pd.api.types.is_numeric_dtype(col):
                text = col.map(_as_text)
                frame[c.name] = text.where(col.notna(), None)
    return frame


def _as_text(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def load_history(cfg: Config, data: str | Path) -> Any:
    """The history as a DataFrame, checked for the columns a backtest needs."""
    if cfg.deploy is None:
        raise UsageError(
            "A backtest replays traffic through an endpoint, but loopml.yaml has no 'deploy' "
            "section. Add one (deploy: {endpoint: NAME}) and run it again.",
            field="deploy",
        )
    if not cfg.data.time:
        raise UsageError(
            "A backtest replays rows in time order, but loopml.yaml names no time column. "
            "Set data.time to the column that says when each row happened.",
            field="data.time",
        )
    frame = load_frame(str(data), Path.cwd(), what="DATA")
    missing = [c for c in (cfg.data.time, cfg.data.target) if c not in frame.columns]
    if missing:
        raise DataError(
            f"DATA ({data}) has no column {', '.join(map(repr, missing))}, which loopml.yaml "
            f"names as data.time / data.target. Columns there: {', '.join(frame.columns[:12])}.",
            field=missing[0],
        )
    return frame[frame[cfg.data.target].notna()].reset_index(drop=True)


def history_in_range(
    cfg: Config, data: str | Path, opts: BacktestOptions
) -> tuple[pd.DataFrame, np.ndarray]:
    """The labelled rows of ``data`` between ``--from`` and ``--to``, and their event times."""
    frame = load_history(cfg, data)
    assert cfg.deploy is not None and cfg.data.time is not None  # checked above
    t = event_seconds(frame[cfg.data.time], cfg.data.time)
    keep = np.ones(len(t), dtype=bool)
    if opts.start is not None:
        keep &= t >= opts.start
    if opts.end is not None:
        keep &= t < opts.end
    if not keep.any():
        raise UsageError(
            "No row of DATA falls between --from and --to. The history spans "
            f"{iso_z(t.min())} to {iso_z(t.max())}.",
            field="from",
        )
    return frame[keep].reset_index(drop=True), t[keep]


def first_champion(
    cfg: Config, sim_cfg: Config, store: Store, steps: Steps, frame: pd.DataFrame
) -> tuple[int, pd.DataFrame]:
    """Train and deploy the backtest's first champion; returns its id and ``frame`` typed as
    its signature."""
    from loopml.train import run

    assert cfg.deploy is not None
    with steps.step(f"Train the first champion on {cfg.data.train} (gates included)"):
        first = run(sim_cfg, store=store, trigger="backtest", actor=ACTOR)
    if not first.passed or first.version is None:
        failed = [g["gate"] for g in first.gates if g.get("verdict") == "fail"]
        raise GatesFailedError(
            f"The first champion, trained on {cfg.data.train}, failed its gates "
            f"({', '.join(failed) or 'see loopml run'}); a backtest needs a champion to "
            "start from. Run 'loopml run' to see the verdicts."
        )
    endpoint = cfg.deploy.endpoint
    store.endpoints.deploy(
        endpoint, first.version, actor=ACTOR, reason="first champion of the backtest"
    )
    signature = Signature.from_dict(first.version["signature"])
    missing = [c.name for c in signature.columns if c.name not in frame.columns]
    if missing:
        raise DataError(
            f"DATA has no column {', '.join(map(repr, missing))}, which the model takes "
            "as input. Replay a file with the columns the model was trained on.",
            field=missing[0],
        )
    return int(first.version["id"]), typed_as(frame, signature)


def check_served(server: SimServing, n_requests: int) -> None:
    """A replay whose every request was refused says nothing about the loop."""
    if server.rejected == n_requests:
        why = server.refusals.most_common(1)[0][0] if server.refusals else "unknown"
        raise DataError(
            f"The model's input checks refused every request of DATA, e.g.: {why} Check "
            "DATA's columns and types against the training data.",
            field="DATA",
        )
