"""The command line as a newcomer meets it: tables that fit 80 columns without cutting a word
in their key columns, help on every option, ``-c`` anywhere, clear not-found errors."""

from __future__ import annotations

import argparse
import json
import re

import pytest
from tests.conftest import CONFIG, make_project

from loopml.cli import NOT_FOUND, build_parser, main

LONG = "employment-survey-classifier"


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    """A project whose store has what every listing shows: runs, versions in several
    statuses, a canary, decisions with long reasons, keys and traffic history."""
    root = make_project(
        tmp_path_factory.mktemp("cli") / "proj",
        config=CONFIG.replace("name: tiny", f"name: {LONG}").replace(
            "endpoint: tiny", f"endpoint: {LONG}"
        ),
    )
    c = ["-c", str(root)]
    for _ in range(3):
        assert main(["run", *c]) == 0
    assert main(["deploy", LONG, "1", *c, "--reason", "the first model after the audit"]) == 0
    assert main(["deploy", LONG, "2", "--canary", "12.5", *c]) == 0
    assert (
        main(["keys", "create", "--role", "labeller", "--name", "the nightly label job", *c]) == 0
    )
    assert main(["retire", "3", *c]) == 0
    return root


TABLES = [
    (["versions"], [LONG, "champion", "canary", "retired"]),
    (["runs"], [LONG, "succeeded"]),
    (["decisions"], ["status:champion", "status:canary", "key:create"]),
    (["keys", "list"], ["labeller"]),
    (["history", LONG], []),
    (["describe", LONG], ["champion", "canary"]),
]


@pytest.mark.parametrize(("argv", "whole"), TABLES, ids=lambda a: " ".join(a) if a else "")
def test_every_table_fits_80_columns_without_cut_words(busy, capsys, monkeypatch, argv, whole):
    monkeypatch.setenv("COLUMNS", "80")
    assert main([*argv, "-c", str(busy)]) == 0
    out = capsys.readouterr().out
    tables = out.split("\n# ")[0]  # describe's curl examples are meant to be copied whole
    assert max(len(line) for line in tables.splitlines()) <= 80, tables
    assert "…" not in tables, tables
    cells = {c.strip() for line in tables.splitlines() for c in re.split(r"[│┃]", line)}
    for word in whole:
        assert word in cells, f"{word!r} cut or missing in:\n{tables}"


def test_wide_shows_every_column(busy, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["versions", "-c", str(busy)]) == 0
    narrow = capsys.readouterr().out
    assert "┃ sha256" not in narrow and "--wide shows" in narrow
    assert main(["versions", "--wide", "-c", str(busy)]) == 0
    wide = capsys.readouterr().out
    assert "┃ sha256" in wide and "┃ created (UTC)" in wide and "left out" not in wide


def _options():
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sp in sub.choices.items():
        for action in sp._actions:
            if not isinstance(action, argparse._HelpAction):
                yield name, action


def test_every_option_and_argument_has_help():
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, action in _options()
        if not action.help or action.help == argparse.SUPPRESS
    ]
    assert not missing


def test_status_help_lists_every_status():
    from loopml.cli.parser import STATUSES_HELP
    from loopml.store.registry import STATUSES

    assert set(STATUSES) <= set(STATUSES_HELP.split(", "))


def test_config_option_works_before_and_after_the_command(busy, capsys):
    for argv in (
        ["-c", str(busy), "versions", "--json"],
        ["versions", "-c", str(busy), "--json"],
        ["versions", "--json", "--project", str(busy)],
    ):
        assert main(argv) == 0
        assert len(json.loads(capsys.readouterr().out)) == 3


@pytest.mark.parametrize(
    "argv",
    [["promote", LONG, "99"], ["deploy", LONG, "99"], ["disable", "99"], ["retire", "99"]],
    ids=lambda a: " ".join(a),
)
def test_a_missing_version_is_not_found_not_a_traceback(busy, capsys, argv):
    """Guards against `promote E 99` printing a raw database IntegrityError traceback."""
    assert main([*argv, "-c", str(busy)]) == NOT_FOUND
    err = capsys.readouterr().err
    assert err.startswith("not found: ") and "99" in err and "Traceback" not in err


def test_a_monitor_pass_with_nothing_to_do_says_what_it_waits_for(busy, capsys):
    """Guards against `loopml monitor` printing nothing while it waits for a window to close."""
    from loopml.cli.scheduled import waiting_for
    from loopml.config import load_config

    assert main(["monitor", "-c", str(busy)]) == 0
    out = capsys.readouterr().out
    assert "Nothing new to compute" in out and "closes at" in out
    text = waiting_for(load_config(busy), now=3600 * 1000 + 600)  # 10 min into an hour window
    assert "in 3300 s" in text and "(monitor.window 3600 s + monitor.grace 300 s)" in text


def test_versions_json_names_the_inputs(busy, capsys):
    assert main(["versions", "--json", "-c", str(busy)]) == 0
    v = json.loads(capsys.readouterr().out)[0]
    assert {"name": "cat", "type": "category"} in v["inputs"]
    assert {"name": "x0", "type": "number"} in v["inputs"]


def test_an_unexpected_failure_is_one_message_and_a_traceback_only_on_request(
    tmp_path, capsys, monkeypatch
):
    """Guards against raw library tracebacks (here the database driver's) reaching the user."""
    root = make_project(tmp_path / "p", store="sqlite:///notadb.db")
    (root / "notadb.db").write_text("this is not a database file, " * 100)
    code = main(["versions", "-c", str(root)])
    err = capsys.readouterr().err
    assert code in (2, 3) and "Traceback" not in err and err.startswith("error: "), err
    monkeypatch.setenv("LOOPML_DEBUG", "1")
    if code == 3:  # not a LoopmlError: in debug mode the exception itself surfaces
        with pytest.raises(Exception):  # noqa: B017 (whatever the driver raises)
            main(["versions", "-c", str(root)])
