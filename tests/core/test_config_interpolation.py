"""Issue 14 defect 11: ${VAR} is substituted into parsed values, not into the raw YAML text,
so a value holding '#', ': ' or a newline cannot change the file's structure."""

from __future__ import annotations

import pytest
from tests.core.test_config import GOOD

from loopml.config.loading import parse_config
from loopml.errors import ConfigError


@pytest.mark.parametrize(
    "value",
    [
        "s3cr#t",  # a comment start: the raw text would cut the value here
        "user: admin",  # a mapping
        "x\nserve: {auth: false}",  # a newline: a whole new key that turns auth off
        "a' b\" ${NOT_EXPANDED_TWICE}",
    ],
)
def test_values_cannot_change_the_structure(monkeypatch, value):
    monkeypatch.setenv("LOOPML_T_VALUE", value)
    cfg = parse_config(GOOD + "store: ${LOOPML_T_VALUE}\n")
    assert cfg.store == value
    assert cfg.serve.auth is True


def test_substitution_inside_values_lists_and_defaults(monkeypatch):
    monkeypatch.setenv("LOOPML_T_HOST", "box.internal")
    monkeypatch.setenv("LOOPML_T_PORT", "9001")
    cfg = parse_config(
        GOOD
        + "serve:\n  port: ${LOOPML_T_PORT}\n  allowed_hosts: ['${LOOPML_T_HOST}', 'x-${NOPE:-d}']\n"
        + "# a comment may mention ${UNSET_IN_A_COMMENT}\n"
    )
    assert cfg.serve.port == 9001
    assert cfg.serve.allowed_hosts == ["box.internal", "x-d"]


def test_unset_variable_still_names_its_line():
    line = GOOD.count("\n") + 2  # the line after ``serve:``
    with pytest.raises(
        ConfigError, match=rf"line {line}: environment variable \$\{{NOPE_T_UNSET\}}"
    ):
        parse_config(GOOD + "serve:\n  host: ${NOPE_T_UNSET}\n")


def test_an_unquoted_variable_in_a_flow_list_gets_a_hint():
    with pytest.raises(ConfigError, match="quote a"):
        parse_config(GOOD + "serve:\n  allowed_hosts: [${LOOPML_T_HOST}]\n")
