"""The ``loopml.yaml`` spec as typed objects. Every default lives here.

``load_config(path)`` reads the YAML, interpolates ``${VAR}`` / ``${VAR:-default}`` from the
environment, validates it with pydantic and turns every problem into a ``ConfigError`` that
names the file, the line, the key, the value received and what is allowed (with a "did you
mean" for unknown keys).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator
from pydantic import ValidationError as PydanticValidationError

from loopml.errors import ConfigError

CONFIG_NAME = "loopml.yaml"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> float:
    """'90d' -> seconds. Plain non-negative numbers are taken as seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration such as '1h', '30m' or '90d'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a non-negative duration such as '1h', '30m' or '90d'")
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError("a duration such as '1h', '30m' or '90d'")
    return float(m.group(1)) * _UNITS[m.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


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


# --------------------------------------------------------------------------- gates
GateOptions = dict[str, Any] | None


class GatesConfig(Section):
    """Each gate's options are checked by the gate itself (``loopml.evaluate.registry``), which
    names the valid options and metric/perturbation names in its errors. Unset gates are off,
    except fairness, which runs with the four-fifths rule whenever ``data.sensitive`` is set
    (``fairness: {enabled: false}`` turns it off)."""

    metrics: GateOptions = None  # {thresholds: {accuracy: ">= 0.7"}} or {accuracy: ">= 0.7"}
    champion: GateOptions = None  # {metric: roc_auc, delta: 0.01}; runs when a champion exists
    fairness: GateOptions = None
    behaviour: GateOptions = None  # {tests: [{type: dir, column: SCHL, expect: up}, ...]}
    data: GateOptions = None
    labels: GateOptions = None
    stability: GateOptions = None


# --------------------------------------------------------------------------- deploy
class GuardsConfig(Section):
    max_error_rate: float | None = Field(0.01, ge=0, le=1)
    max_p99_ms: float | None = Field(250.0, gt=0)
    max_prediction_drift: float | None = Field(0.2, ge=0)
    max_accuracy_drop: float | None = Field(0.03, ge=0, le=1)
    # A guard judges batches of at least ``min_samples`` challenger rows (labelled rows for the
    # accuracy guard) and rolls back after ``consecutive`` breached batches in a row. These
    # defaults keep an A/A rollout's false rollback rate at about 1-2% over 20 judged batches and
    # catch a challenger 5 points less accurate in >99% (tests/control/test_guard_statistics.py).
    consecutive: int = Field(3, ge=1)  # k consecutive breaches before a rollback
    min_samples: int = Field(500, ge=1)


class RolloutConfig(Section):
    shadow: Duration = 3600.0
    shadow_min_samples: int = Field(500, ge=0)
    steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0])
    step_duration: Duration = 600.0
    guards: GuardsConfig = Field(default_factory=GuardsConfig)

    @model_validator(mode="after")
    def _check(self) -> RolloutConfig:
        if not self.steps or any(not 0 < s <= 100 for s in self.steps):
            raise ValueError("steps must be canary weights in (0, 100], e.g. [5, 25, 50, 100]")
        if self.steps != sorted(self.steps):
            raise ValueError("steps must increase, e.g. [5, 25, 50, 100]")
        g = self.guards
        if all(
            v is None
            for v in (g.max_error_rate, g.max_p99_ms, g.max_prediction_drift, g.max_accuracy_drop)
        ):
            raise ValueError(
                "a rollout needs at least one guard (max_error_rate, max_p99_ms, "
                "max_prediction_drift or max_accuracy_drop): automatic rollback must never be off"
            )
        return self


class DeployConfig(Section):
    endpoint: str
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    expire_after: Duration | None = 90 * 86400.0
    idle_after: Duration | None = 30 * 86400.0
    unseen_categories: Literal["accept", "flag", "reject"] = "flag"
    nulls: Literal["accept", "reject"] = "accept"
    coarsen: Literal["none", "top_class", "rounded"] = "none"


# --------------------------------------------------------------------------- monitor
class AlertRule(Section):
    name: str
    on: Literal[
        "drift", "quality", "performance", "estimated_performance", "fairness", "latency", "errors"
    ]
    k: int = Field(1, ge=1)
    m: int = Field(1, ge=1)
    cooldown: Duration = 3600.0
    webhook: str | None = None
    severity: Literal["info", "warning", "critical"] = "warning"
    # drift: share of drifted columns; performance / estimated_performance: largest drop below
    # the version's test metric; fairness: smallest ratio; latency: p99 ms; errors: error rate;
    # quality: error findings per window. None = the monitor section's setting (or 1000 ms,
    # 1% errors, 1 finding).
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
    performance_metric: str = "accuracy"
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
    durable_log: bool = True
    auth: bool = True
    rate_limit_per_s: float = Field(1000.0, gt=0)
    rate_burst: int = Field(2000, ge=1)
    controller_interval: Duration = 5.0
    log_segment: Duration = 300.0  # the prediction log rolls to a new segment this often ...
    compact_every: Duration = 60.0  # ... and closed segments become Parquet this often


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
    security: SecurityConfig = Field(default_factory=SecurityConfig)

    # where the file lives; paths in the spec are relative to it
    root: Path = Field(default=Path("."), exclude=True)
    _source: str = PrivateAttr(default=CONFIG_NAME)
    _lines: dict[tuple[Any, ...], int] = PrivateAttr(default_factory=dict)

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


def resolve_store_url(url: str, root: Path) -> str:
    """Make a relative ``sqlite:///file`` URL absolute against the project folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        rel = url[len(prefix) :]
        return prefix + str((root / rel).resolve())
    return url


# --------------------------------------------------------------------------- loading
class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 also reads on/off/yes/no as booleans,
    which turns keys such as ``retrain: {on: [decay]}`` into ``{True: [...]}``."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(text: str, source: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        line = text.count("\n", 0, m.start()) + 1
        raise ConfigError(
            f"{source}, line {line}: environment variable ${{{name}}} is not set. "
            f"Set it, or give a default as ${{{name}:-value}}."
        )

    return _ENV.sub(sub, text)


def _line_map(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            lines[(*path, key)] = k.start_mark.line + 1
            for p, ln in _line_map(v, (*path, key)).items():
                lines.setdefault(p, ln)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            lines.update(_line_map(v, (*path, i)))
    return lines


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the last key of ``loc`` (to suggest close keys)."""
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        for c in list(candidates):
            candidates.extend(getattr(c, "__args__", ()))
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if model is None:
            return None
    return model


def _explain(err: dict[str, Any], source: str, lines: dict[tuple[Any, ...], int], raw: Any) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
    key = ".".join(str(p) for p in loc) or "(top level)"
    line = None
    for n in range(len(loc), -1, -1):
        line = lines.get(loc[:n])
        if line:
            break
    where = f"{source}, line {line}" if line else source
    value = raw
    for p in loc:
        try:
            value = value[p]
        except (KeyError, IndexError, TypeError):
            value = None
            break
    kind = err["type"]
    if kind == "extra_forbidden":
        owner = _model_at(loc)
        allowed = sorted(owner.model_fields) if owner else []
        allowed = [a for a in allowed if a != "root"]
        near = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" Did you mean '{near[0]}'?" if near else ""
        return f"{where}: unknown key '{key}'.{hint} Allowed keys here: {', '.join(allowed)}."
    if kind == "missing":
        return f"{where}: '{key}' is required but missing."
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if isinstance(value, dict | list):
        return f"{where}: '{key}': {msg}."
    return f"{where}: '{key}' must be {msg[0].lower() + msg[1:]}. Got {value!r} instead."


def parse_config(text: str, *, source: str = CONFIG_NAME, root: Path | None = None) -> Config:
    """Validate a loopml.yaml document given as text."""
    text = _interpolate(text, source)
    try:
        node = yaml.compose(text, Loader=_Loader)
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}{line}: not valid YAML ({getattr(e, 'problem', e)}).") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping of keys such as 'project:', 'data:', 'model:'."
        )
    lines = _line_map(node) if node is not None else {}
    try:
        cfg = Config.model_validate(raw)
    except PydanticValidationError as e:
        errors = e.errors()
        # a misspelt key shows up twice (unknown + missing): keep the "did you mean" one
        typos = {
            (*err["loc"][:-1], near)
            for err in errors
            if err["type"] == "extra_forbidden" and (owner := _model_at(tuple(err["loc"])))
            for near in difflib.get_close_matches(
                str(err["loc"][-1]), list(owner.model_fields), n=1
            )
        }
        errors = [e for e in errors if not (e["type"] == "missing" and tuple(e["loc"]) in typos)]
        problems = [_explain(dict(err), source, lines, raw) for err in errors]
        raise ConfigError(" ".join(problems[:5])) from None
    cfg.root = (root or Path(".")).resolve()
    cfg._source, cfg._lines = source, lines
    return cfg


def find_config(path: str | Path | None = None) -> Path:
    """The loopml.yaml to use: ``path`` (file or folder), else ./loopml.yaml."""
    p = Path(path) if path else Path.cwd()
    if p.is_dir():
        p = p / CONFIG_NAME
    if not p.exists():
        raise ConfigError(
            f"No {CONFIG_NAME} at {p}. Run 'loopml init' to create a project, or pass "
            f"--config PATH."
        )
    return p


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate loopml.yaml (a file, or a folder holding one)."""
    p = find_config(path)
    return parse_config(p.read_text(), source=str(p), root=p.parent)
