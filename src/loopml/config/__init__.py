"""The ``loopml.yaml`` spec as typed objects. Every default lives here.

``load_config(path)`` reads the YAML, interpolates ``${VAR}`` / ``${VAR:-default}`` from the
environment, validates it with pydantic and turns every problem into a ``ConfigError`` that
names the file, the line, the key, the value received and what is allowed (with a "did you
mean" for unknown keys).

``sections`` holds the pydantic models and their defaults, ``gate_options`` those of the
``gates:`` section, ``fields`` their building blocks; ``loading`` reads and checks the file.
"""

from loopml.config.fields import Duration, Section, parse_duration
from loopml.config.gate_options import (
    BehaviourGateOptions,
    ChampionGateOptions,
    DataGateOptions,
    FairnessGateOptions,
    GateOptions,
    GatesConfig,
    LabelsGateOptions,
    MetricsGateOptions,
    StabilityGateOptions,
)
from loopml.config.loading import find_config, load_config, options_error, parse_config
from loopml.config.sections import (
    CONFIG_NAME,
    AlertRule,
    Config,
    DataConfig,
    DeployConfig,
    GuardsConfig,
    LogConfig,
    ModelConfig,
    MonitorConfig,
    RetrainConfig,
    RolloutConfig,
    SecurityConfig,
    ServeConfig,
    decision_metric,
    resolve_store_url,
)

__all__ = [
    "CONFIG_NAME",
    "AlertRule",
    "BehaviourGateOptions",
    "ChampionGateOptions",
    "Config",
    "DataConfig",
    "DataGateOptions",
    "DeployConfig",
    "Duration",
    "FairnessGateOptions",
    "GateOptions",
    "GatesConfig",
    "GuardsConfig",
    "LabelsGateOptions",
    "LogConfig",
    "MetricsGateOptions",
    "ModelConfig",
    "MonitorConfig",
    "RetrainConfig",
    "RolloutConfig",
    "Section",
    "SecurityConfig",
    "ServeConfig",
    "StabilityGateOptions",
    "decision_metric",
    "find_config",
    "load_config",
    "options_error",
    "parse_config",
    "parse_duration",
    "resolve_store_url",
]
