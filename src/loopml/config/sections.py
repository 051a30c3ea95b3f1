"""The sections of ``loopml.yaml`` as pydantic models, with every default.

One model per top-level key (``data``, ``model``, ``gates``, ``deploy``, ``monitor``,
``retrain``, ``serve``, ``log``, ``security``) and ``Config`` for the whole file. Durations accept
'1h', '30m', '90d' or plain seconds (``parse_duration``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from loopml.config.fields import Duration, Section
from loopml.config.gate_options import GatesConfig

# the spec's file name; Config.where() names it until parse_config records the real path
CONFIG_NAME = "loopml.yaml"


# --------------------------------------------------------------------------- data, model
class DataConfig(Section):
    train: str = Field(description="Parquet/CSV path (relative to the project) or module:function")
    target: str
    features: list[str] | None = None
    drop: list[str] = Field(default_factory=list)
    sensitive: list[str] = Field(default_factory=list)
    segments: list[str] = Field(default_factory=list)
    time: str | None = None
    id: str | None = None
    split: Literal["auto", "time", "stratified", "random"] = "auto"
    test_size: float = Field(0.2, gt=0, lt=1)
    test_from: Any = None  # with split=time: rows with time >= test_from form the test set
    task: Literal["auto", "classification", "regression"] = "auto"
    positive_class: Any = None


class ModelConfig(Section):
    name: str
    description: str | None = None  # the model card's "what it does"
    intended_use: str | None = None
    out_of_scope: str | None = None
    owners: list[str] = Field(default_factory=list)
    train: str = Field(description="module.py:function or package.module:function")
    params: dict[str, Any] = Field(default_factory=dict)
    format: Literal["skops", "onnx", "lightgbm", "xgboost", "pickle"] = "skops"
    trusted_types: list[str] = Field(default_factory=list)
    trust_pickle: bool = False
    seed: int = 0
    # BLAS/OpenMP threads while training and judging (threadpoolctl), in loopml run, the
    # controller's retraining and the demo alike; None leaves the libraries' own default (one
    # thread per core). 1 by measurement: see loopml.train.threads.
    threads: int | None = Field(1, ge=1)


# --------------------------------------------------------------------------- deploy
class GuardsConfig(Section):
    """How a rollout judges its challenger (``control.rollout``).

    Decision quality is judged on *paired* rows (challenger and champion score the same
    requests) by an anytime-valid confidence sequence (``stats.sequential``) on the mean
    per-row ``score`` difference, counted in requests (clusters), not rows: rolled back when
    the sequence shows the challenger worse by more than ``margin``, promoted at the end of
    the steps only when it shows it non-inferior (worse by less than ``margin``), and
    ``inconclusive`` when ``rollout.max_duration`` runs out first. ``alpha`` bounds the false
    rollback rate over the whole rollout, every look included. The operational guards (error
    rate, p99 latency, prediction drift) judge batches of ``min_samples`` challenger rows and
    roll back after ``consecutive`` breached batches in a row."""

    max_error_rate: float | None = Field(0.01, ge=0, le=1)
    max_p99_ms: float | None = Field(250.0, gt=0)
    max_prediction_drift: float | None = Field(0.2, ge=0)
    consecutive: int = Field(3, ge=1)  # k consecutive breaches before a rollback
    min_samples: int = Field(500, ge=1)
    # the per-row score judged online; None: the one that stands for deploy.metric
    # (evaluate.rowloss: error_rate, brier, log_loss, squared_error, absolute_error)
    score: Literal["error_rate", "brier", "log_loss", "squared_error", "absolute_error"] | None = (
        None
    )
    # non-inferiority margin in the score's units; None: 0.01 for error_rate, 0.005 brier,
    # 0.02 log_loss, 2% of the champion's mean loss for the regression scores
    margin: float | None = Field(None, ge=0)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    min_requests: int = Field(30, ge=2)  # requests with labelled pairs before any verdict
    # promote on the operational guards alone when no labels ever arrive (default: the
    # rollout ends inconclusive, since quality was never shown)
    promote_without_labels: bool = False

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        # ``max_accuracy_drop`` (before the paired test) is the margin of the error-rate score
        if isinstance(data, dict) and "max_accuracy_drop" in data:
            data = dict(data)
            drop = data.pop("max_accuracy_drop")
            if drop is not None and data.get("margin") is None:
                data["margin"] = drop
        return data


class RolloutConfig(Section):
    shadow: Duration = 3600.0
    shadow_min_samples: int = Field(500, ge=0)
    steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0])
    step_duration: Duration = 600.0
    # a rollout still undecided after this long ends "inconclusive" (the champion stays);
    # None: twice the configured rollout time (shadow + steps x step_duration)
    max_duration: Duration | None = None
    guards: GuardsConfig = Field(default_factory=GuardsConfig)

    @model_validator(mode="after")
    def _check(self) -> RolloutConfig:
        if not self.steps or any(not 0 < s <= 100 for s in self.steps):
            raise ValueError("steps must be canary weights in (0, 100], e.g. [5, 25, 50, 100]")
        if self.steps != sorted(self.steps):
            raise ValueError("steps must increase, e.g. [5, 25, 50, 100]")
        return self

    @property
    def planned(self) -> float:
        """The configured rollout time: shadow plus every step."""
        return self.shadow + len(self.steps) * self.step_duration

    @property
    def deadline(self) -> float:
        return self.max_duration if self.max_duration is not None else 2.0 * self.planned


class DeployConfig(Section):
    endpoint: str
    # the endpoint's one decision metric: the champion gate, the rollout's paired judgement
    # (through its per-row score), the guards and the decay trigger all judge it. None: the
    # champion gate's metric (or monitor.performance_metric) when named, else the task's
    # default (roc_auc for a binary classifier with probabilities, accuracy, rmse)
    metric: str | None = None
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    expire_after: Duration | None = 90 * 86400.0
    idle_after: Duration | None = 30 * 86400.0
    unseen_categories: Literal["accept", "flag", "reject"] = "flag"
    nulls: Literal["accept", "reject"] = "accept"
    coarsen: Literal["none", "top_class", "rounded"] = "none"
    # request columns that are neither model inputs nor the declared data.id / data.time /
    # data.sensitive / data.segments (which are always accepted and logged as context)
    extra_columns: Literal["reject", "drop"] = "reject"


# --------------------------------------------------------------------------- monitor
class AlertRule(Section):
    name: str
    on: Literal[
        "drift",
        "quality",
        "performance",
        "estimated_performance",
        "fairness",
        "latency",
        "errors",
        "refused",
    ]
    k: int = Field(1, ge=1)
    m: int = Field(1, ge=1)
    cooldown: Duration = 3600.0
    webhook: str | None = None
    severity: Literal["info", "warning", "critical"] = "warning"
    # drift: share of drifted columns; performance / estimated_performance: largest drop below
    # the version's test metric; fairness: smallest ratio; latency: p99 ms; errors: error rate;
    # quality: error findings per window; refused: share of the endpoint's rows refused with a
    # 4xx. None = the monitor section's setting (or 1000 ms, 1% errors, 1 finding, 0.5 refused).
    threshold: float | None = None

    @model_validator(mode="after")
    def _k_of_m(self) -> AlertRule:
        if self.k > self.m:
            raise ValueError(
                f"alert rule {self.name!r}: k ({self.k}) must be at most m ({self.m}): "
                "the rule fires when k of the last m windows breach"
            )
        return self


class MonitorConfig(Section):
    window: Duration = 3600.0
    drift_share: float = Field(0.3, gt=0, le=1)
    false_alarm_rate: float = Field(0.01, gt=0, lt=0.5)
    min_window_rows: int = Field(200, ge=1)
    multivariate_rows: int = Field(
        2000,
        ge=0,
        description="rows of each window (and of the reference's stored sample) the domain "
        "classifier compares for multivariate drift; 0 turns it off (~0.3 s per window)",
    )
    # the live / estimated metric judged against the version's test metric; None: accuracy
    # for a classifier, r2 for a regression. For log_loss, mae and rmse (lower is better) a
    # window breaches when the metric rises more than max_performance_drop above it.
    performance_metric: str | None = None
    max_performance_drop: float = Field(0.03, ge=0, le=1)
    fairness_threshold: float = Field(0.8, gt=0, le=1)
    min_group_size: int = Field(30, ge=1)
    schedule: Duration = 60.0
    grace: Duration = 300.0  # a window is closed this long after its end (log compaction lag)
    labels_within: Duration = 7 * 86400.0  # labels arriving later than this are not joined
    alerts: list[AlertRule] = Field(default_factory=list)
    webhooks: list[str] = Field(default_factory=list)


class RetrainConfig(Section):
    on: list[Literal["decay", "drift", "quality", "schedule", "labels", "manual"]] = Field(
        default_factory=lambda: ["decay", "drift", "manual"]  # type: ignore[arg-type]
    )
    cooldown: Duration = 86400.0
    schedule: Duration | None = None
    min_new_labels: int = Field(1000, ge=1)
    budget_per_day: int = Field(3, ge=1)
    breaker: int = Field(3, ge=1)
    recent: Duration = 90 * 86400.0  # how far back labelled prediction logs are taken
    # train on the original data plus the recent labelled rows; false: the recent rows only
    # (when the world has changed and the old data teaches the old rule)
    include_original: bool = True
    # the newest share of the recent labelled rows is held out of training, so the champion
    # gate compares challenger and champion on recent data neither was trained on
    holdout: float = Field(0.3, ge=0, lt=1)
    # decay is judged against the champion's own live metric over its first labelled rows
    # after it took traffic (at least this many labels), or against ``decay_floor`` when set
    # (an absolute level of the decision metric), with a one-sided 95% interval
    decay_baseline_rows: int = Field(1000, ge=1)
    decay_floor: float | None = None
    # after a retraining that did not help (its candidate was not better than the champion,
    # rolled back or inconclusive), the cooldown doubles, up to this many times the cooldown
    max_backoff: float = Field(16.0, ge=1)
    # decay / drift / quality fire when k of the last m judged monitor windows breach
    k: int = Field(2, ge=1)
    m: int = Field(3, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        # YAML 1.1 reads a bare ``on:`` key as the boolean True
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _k_of_m(self) -> RetrainConfig:
        if self.k > self.m:
            raise ValueError(
                f"retrain.k ({self.k}) must be at most retrain.m ({self.m}): a trigger "
                "fires when k of the last m monitor windows breach"
            )
        return self


class ServeConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_batch_size: int = Field(64, ge=1)
    max_batch_wait_ms: float = Field(2.0, ge=0)
    # after its quiet turns, a batch waits this long at most for as many requests as the
    # cohort its lane cut moments ago held (serve/inference/batching.py, "the cohort wait")
    batch_delay_ms: float = Field(1.0, ge=0, le=100)
    shadow_batch_wait_ms: float = Field(200.0, ge=0)  # shadows gather this long per predict call
    # a model whose batch predict takes less CPU than this runs on the event loop (no thread
    # hand-offs), a slower one in a thread of its own (the loop keeps answering meanwhile)
    inline_below_ms: float = Field(10.0, ge=0)
    durable_log: bool = True
    # while more requests are being answered than a ready group of log records holds, the
    # log's writer waits this long before its fsync so their records share it (logs/wal.py)
    log_commit_delay_ms: float = Field(1.0, ge=0, le=100)
    auth: bool = True
    rate_limit_per_s: float = Field(1000.0, gt=0)
    rate_burst: int = Field(2000, ge=1)
    controller_interval: Duration = 5.0
    # where `loopml serve` runs the monitor and the controller: one child process at lower CPU
    # priority (background_nice), or threads of the serving process (embedding, debugging)
    background: Literal["process", "thread"] = "process"
    background_nice: int = Field(10, ge=0, le=19)
    # the background process and the log compactor hand over to a fresh process when their
    # memory after a pass grew this much over what it was after their first (0: never;
    # loopml/memory.py Budget)
    background_max_growth: float = Field(0.10, ge=0)
    log_segment: Duration = 300.0  # the prediction log rolls to a new segment this often ...
    compact_every: Duration = 60.0  # ... and closed segments become Parquet this often
    # with auth off, names (or origins) besides loopback the server answers to (serve/access/origins.py)
    allowed_hosts: list[str] = Field(default_factory=list)
    # signs dashboard session cookies (serve/access/sessions.py); set it when several processes
    # serve one dashboard, e.g. session_secret: ${LOOPML_SESSION_SECRET}; else per process
    session_secret: str | None = None
    # slow and idle clients (serve/http/slowclients.py): a request's headers and body must arrive
    # within these times; an idle kept-alive connection closes after idle_timeout; past
    # max_connections the oldest connection not being answered is closed
    header_timeout: Duration = 10.0
    body_timeout: Duration = 60.0
    idle_timeout: Duration = 5.0
    max_connections: int = Field(1000, ge=1)


class LogConfig(Section):
    # where the prediction log's Parquet parts go (a folder or an s3:// URL); None: the
    # artifacts root. Every reader asks loopml.logs.layout.log_location for it.
    root: str | None = None
    # this machine's folder for write-ahead segments not compacted yet; None: the root when
    # it is a local folder, else .loopml/spool in the project folder
    spool: str | None = None
    # this writer's name in its part names; None: the host name
    replica: str | None = None
    # with a remote root, a label for a request id no part holds yet is kept this long (by the
    # id's time) and looked up again at each compaction before it is dropped as unknown
    label_wait: Duration = 3600.0


class SecurityConfig(Section):
    public_key: str | None = None
    private_key: str | None = None


class Config(Section):
    project: str
    store: str = "sqlite:///.loopml/loopml.db"
    artifacts: str = ".loopml/artifacts"
    data: DataConfig
    model: ModelConfig
    gates: GatesConfig = Field(default_factory=GatesConfig)
    deploy: DeployConfig | None = None
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)

    # where the file lives; paths in the spec are relative to it
    root: Path = Field(default=Path("."), exclude=True)
    _source: str = PrivateAttr(default=CONFIG_NAME)
    _lines: dict[tuple[Any, ...], int] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _one_decision_metric(self) -> Config:
        """The metric named in any one place (deploy.metric first, then the champion gate's,
        then the monitor's) is the one the others judge where they name none."""
        champ = self.gates.champion
        named = (
            (self.deploy.metric if self.deploy else None)
            or (champ.metric if champ else None)
            or self.monitor.performance_metric
        )
        if named is None:
            return self
        if self.deploy is not None and self.deploy.metric is None:
            self.deploy.metric = named
        if champ is not None and not champ.metric:
            champ.metric = named  # type: ignore[assignment]  # judged when the gate is built
        if self.monitor.performance_metric is None:
            self.monitor.performance_metric = named
        return self

    def where(self, key: list[str] | tuple[str, ...]) -> str:
        """'loopml.yaml, line 12' for a key path (the nearest line known), for error messages."""
        path = tuple(key)
        for n in range(len(path), -1, -1):
            if path[:n] in self._lines:
                return f"{self._source}, line {self._lines[path[:n]]}"
        return self._source

    def path(self, p: str) -> Path:
        """A path from the spec, resolved against the project folder."""
        q = Path(p).expanduser()
        return q if q.is_absolute() else (self.root / q)

    @property
    def store_url(self) -> str:
        return resolve_store_url(self.store, self.root)

    @property
    def artifacts_root(self) -> str:
        if "://" in self.artifacts:
            return self.artifacts
        return str(self.path(self.artifacts).resolve())


def decision_metric(cfg: Config, task: str, n_classes: int | None = 2) -> str:
    """The endpoint's one decision metric (see ``DeployConfig.metric``)."""
    champ = cfg.gates.champion
    named = (cfg.deploy.metric if cfg.deploy else None) or (champ.metric if champ else None)
    named = named or cfg.monitor.performance_metric
    if named:
        return str(named)
    if task == "regression":
        return "rmse"
    return "roc_auc" if n_classes == 2 else "accuracy"


def resolve_store_url(url: str, root: Path) -> str:
    """Make a relative ``sqlite:///file`` URL absolute against the project folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        rel = url[len(prefix) :]
        return prefix + str((root / rel).resolve())
    return url
