"""What the serving app needs to know, gathered from ``loopml.yaml`` in one small object.

:func:`loopml.serve.http.application.create_app` takes a :class:`Settings`; nothing else reads the config.
Tests build one with :meth:`Settings.from_config` and override fields with
``dataclasses.replace``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopml.config import Config, DeployConfig, ServeConfig
from loopml.logs.layout import LogLocation, as_location, log_location


@dataclass(frozen=True)
class Settings:
    """Serving settings.

    ``endpoints``: endpoints served even before the store knows them (they answer 503 until a
    champion is deployed); every endpoint in the store is served as well.
    ``default_endpoint``: the one behind ``POST /invocations``.
    ``log_root``, ``log_spool``, ``log_replica``: where the prediction log lives (see
    :mod:`loopml.logs.layout`; ``log_spool`` None: the root, which must then be local).
    """

    store_url: str
    artifacts_root: str
    log_root: str
    log_spool: str | None = None
    log_replica: str = "local"
    label_wait: float = 3600.0
    endpoints: tuple[str, ...] = ()
    default_endpoint: str | None = None
    serve: ServeConfig = field(default_factory=ServeConfig)
    deploy: DeployConfig | None = None
    trusted_types: tuple[str, ...] = ()
    trust_pickle: bool = False
    public_key: str | None = None
    auth: bool = True
    poll_seconds: float = 0.2
    status_poll_seconds: float = 1.0
    compact_seconds: float = 60.0
    segment_seconds: float = 300.0
    shadow_queue: int = 10_000
    key_cache_seconds: float = 5.0
    access_log: bool = True
    debug: bool = False
    # the project's declared data.id, data.time, data.sensitive and data.segments: accepted in
    # requests, logged beside the prediction, never passed to the model
    context_columns: tuple[str, ...] = ()
    time_column: str | None = None

    @classmethod
    def from_config(cls, cfg: Config, **overrides: Any) -> Settings:
        """Settings from a loaded :class:`~loopml.config.Config` (``overrides`` win)."""
        root = cfg.artifacts_root
        where = log_location(cfg)
        endpoint = cfg.deploy.endpoint if cfg.deploy else None
        values: dict[str, Any] = {
            "store_url": cfg.store_url,
            "artifacts_root": root,
            "log_root": where.root,
            "log_spool": None if where.spool == where.root else where.spool,
            "log_replica": where.replica,
            "label_wait": cfg.log.label_wait,
            "endpoints": (endpoint,) if endpoint else (),
            "default_endpoint": endpoint,
            "serve": cfg.serve,
            "deploy": cfg.deploy,
            "trusted_types": tuple(cfg.model.trusted_types),
            "trust_pickle": cfg.model.trust_pickle,
            "public_key": _public_key(cfg),
            "auth": cfg.serve.auth,
            "compact_seconds": cfg.serve.compact_every,
            "segment_seconds": cfg.serve.log_segment,
            "context_columns": context_columns(cfg),
            "time_column": cfg.data.time,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def log(self) -> LogLocation:
        """Where the prediction log is written and read (root, local spool, replica)."""
        spool = self.log_spool if self.log_spool is not None else as_location(self.log_root).spool
        return LogLocation(self.log_root, spool, self.log_replica)

    @property
    def unseen_policy(self) -> str:
        return self.deploy.unseen_categories if self.deploy else "flag"

    @property
    def allow_nulls(self) -> bool:
        return self.deploy.nulls == "accept" if self.deploy else True

    @property
    def extra_columns(self) -> str:
        return self.deploy.extra_columns if self.deploy else "reject"

    @property
    def coarsen(self) -> str:
        return self.deploy.coarsen if self.deploy else "none"


def context_columns(cfg: Config) -> tuple[str, ...]:
    """The declared columns a request may carry beside the model's inputs."""
    d = cfg.data
    names = [d.id, d.time, *d.sensitive, *d.segments]
    return tuple(dict.fromkeys(n for n in names if n))


def _public_key(cfg: Config) -> str | None:
    """The configured public key: PEM text, or a path (made absolute against the project)."""
    key = cfg.security.public_key
    if not key or "BEGIN" in key:
        return key
    return str(cfg.path(key))
