"""The ``loopml.yaml`` spec as typed objects. Every default lives here.

``load_config(path)`` reads the YAML, interpolates ``${VAR}`` / ``${VAR:-default}`` from the
environment, validates it with pydantic and turns every problem into a ``ConfigError`` that
names the file, the line, the key, the value received and what is allowed (with a "did you
mean" for unknown keys).

``sections`` holds the pydantic models and their defaults; ``loading`` reads and checks the file.
"""

from loopml.config.loading import find_config, load_config, parse_config
from loopml.config.sections import (
    CONFIG_NAME,
    AlertRule,
    Config,
    DataConfig,
    DeployConfig,
    Duration,
    GateOptions,
    GatesConfig,
    GuardsConfig,
    LogConfig,
    ModelConfig,
    MonitorConfig,
    RetrainConfig,
    RolloutConfig,
    Section,
    SecurityConfig,
    ServeConfig,
    decision_metric,
    parse_duration,
    resolve_store_url,
)

__all__ = [
    "CONFIG_NAME",
    "AlertRule",
    "Config",
    "DataConfig",
    "DeployConfig",
    "Duration",
    "GateOptions",
    "GatesConfig",
    "GuardsConfig",
    "LogConfig",
    "ModelConfig",
    "MonitorConfig",
    "RetrainConfig",
    "RolloutConfig",
    "Section",
    "SecurityConfig",
    "ServeConfig",
    "decision_metric",
    "find_config",
    "load_config",
    "parse_config",
    "parse_duration",
    "resolve_store_url",
]
