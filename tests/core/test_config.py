"""loopml.yaml: typed defaults, env interpolation, and errors that name file, line, key."""

from __future__ import annotations

import pytest

from loopml.config import load_config, parse_config, parse_duration
from loopml.errors import ConfigError

GOOD = """\
project: demo
data:
  train: data/train.parquet
  target: y
model:
  name: m
  train: train.py:train
deploy:
  endpoint: e
"""


def test_defaults_and_relative_paths(tmp_path):
    (tmp_path / "loopml.yaml").write_text(GOOD)
    cfg = load_config(tmp_path)
    assert cfg.monitor.window == 3600.0
    assert cfg.deploy.rollout.steps == [5.0, 25.0, 50.0, 100.0]
    assert cfg.store_url == f"sqlite:///{(tmp_path / '.loopml/loopml.db').resolve()}"
    assert cfg.path(cfg.data.train) == tmp_path / "data/train.parquet"


def test_env_interpolation(monkeypatch):
    monkeypatch.setenv("LOOPML_T_STORE", "sqlite:////tmp/x.db")
    cfg = parse_config(GOOD + "store: ${LOOPML_T_STORE}\nartifacts: ${NOPE_NOT_SET:-/tmp/art}\n")
    assert cfg.store == "sqlite:////tmp/x.db"
    assert cfg.artifacts == "/tmp/art"


def test_missing_env_var_names_line():
    with pytest.raises(ConfigError, match=r"line 10: environment variable \$\{NOPE_NOT_SET\}"):
        parse_config(GOOD + "store: ${NOPE_NOT_SET}\n")


def test_unknown_key_did_you_mean_with_line():
    with pytest.raises(ConfigError) as e:
        parse_config(GOOD.replace("  target: y", "  taget: y"), source="p/loopml.yaml")
    msg = str(e.value)
    assert "p/loopml.yaml, line 4" in msg
    assert "unknown key 'data.taget'" in msg and "Did you mean 'target'?" in msg
    assert "required" not in msg  # the typo is reported once, not also as a missing key


def test_bad_value_names_key_value_and_allowed():
    with pytest.raises(ConfigError) as e:
        parse_config(GOOD + "monitor:\n  window: -3\n")
    msg = str(e.value)
    assert "line 11" in msg and "'monitor.window'" in msg and "'1h'" in msg and "-3" in msg


def test_rollout_without_operational_guards_still_judges_quality():
    """Automatic rollback is never off: with every operational guard off, the paired test
    still judges (max_accuracy_drop, its old name, sets its margin)."""
    text = GOOD + (
        "  rollout:\n    guards: {max_error_rate: null, max_p99_ms: null, "
        "max_prediction_drift: null, max_accuracy_drop: 0.02}\n"
    )
    g = parse_config(text).deploy.rollout.guards
    assert g.margin == 0.02 and g.alpha == 0.05 and g.min_requests >= 2
    with pytest.raises(ConfigError, match="alpha"):
        parse_config(GOOD + "  rollout:\n    guards: {alpha: 0.9}\n")


def test_one_decision_metric_is_shared():
    """deploy.metric reaches the champion gate and the monitor where they name none."""
    cfg = parse_config(GOOD + "  metric: log_loss\ngates:\n  champion: {delta: 0.02}\n")
    assert cfg.gates.champion is not None
    assert (cfg.gates.champion.delta, cfg.gates.champion.metric) == (0.02, "log_loss")
    assert cfg.monitor.performance_metric == "log_loss"
    cfg = parse_config(GOOD + "gates:\n  champion: {metric: accuracy}\n")
    assert cfg.deploy.metric == "accuracy" == cfg.monitor.performance_metric


def test_not_yaml_and_not_mapping():
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("project: [unclosed\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_config("- a\n- b\n")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="loopml init"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 7776000.0), ("1h", 3600.0), ("30m", 1800.0), ("250ms", 0.25), (5, 5.0)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["-1h", "soon", True, -2])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)
