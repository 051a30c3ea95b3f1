"""``loopml describe ENDPOINT|VERSION``: the inputs, outputs and traffic of an endpoint, and a
ready-to-paste request per protocol (built by ``loopml.ui.usage``)."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from loopml.cli.commands import command, open_store, print_json, print_table, project_config

PROTOCOL_TITLES = {
    "loopml": "loopml JSON",
    "mlflow": "MLflow scoring protocol (/invocations)",
    "v2": "Open Inference Protocol, KServe V2",
}


def _natural(x: Any) -> tuple[int, Any]:
    text = str(x)
    return (0, int(text)) if text.isdigit() else (1, text)


def _say(text: str) -> None:
    print(textwrap.fill(text, width=80, break_on_hyphens=False))


def _accepts(c: dict[str, Any]) -> str:
    if c["type"] == "category":
        return "one of " + ", ".join(str(x) for x in sorted(c["categories"] or [], key=_natural))
    if c["type"] == "bool":
        return "true or false"
    if c["range"]:
        lo, hi = c["range"]
        return f"trained on {lo:g} to {hi:g}"
    return "a number"


@command
def cmd_describe(args: argparse.Namespace) -> int:
    from loopml.ui.usage import describe

    d = describe(project_config(args), open_store(args), args.target, base=args.url)
    if args.json:
        print_json(d)
        return 0
    where = (
        f"endpoint {d['endpoint']}"
        if d["serving"]
        else f"version {d['version']} (not serving; examples use endpoint {d['endpoint']})"
    )
    _say(
        f"{where}: version {d['version']} (model {d['model']} #{d['number']}, {d['status']}), "
        f"{d['task']} of {d['target'] or 'the target'}"
    )
    print_table(
        f"Inputs ({len(d['inputs'])} columns, all required in every row)",
        ["column", "type", "accepts"],
        [
            (c["name"], c["type"] + (" or null" if c["nullable"] else ""), _accepts(c))
            for c in d["inputs"]
        ],
        wrap=["accepts"],
    )
    classes = next((o["classes"] for o in d["outputs"] if o.get("classes")), None)
    if d["task"] == "regression":
        _say("Answers: a number per row ('predictions').")
    else:
        _say(
            "Answers: a class per row ('predictions'), one of "
            + ", ".join(str(c) for c in classes or [])
            + "; and 'probabilities', one per class in the order of 'classes'."
        )
    if d["traffic"]:
        print_table(
            f"Traffic of {d['endpoint']}",
            ["version", "role", "share of requests"],
            [
                (
                    t["version"],
                    t["role"],
                    f"{t['share']:g}%"
                    if t["role"] != "shadow"
                    else f"mirrors {t['mirrored']:.0%}, never answers",
                )
                for t in d["traffic"]
            ],
        )
    print()
    _say(
        f"Requests with {d['example_source']}. Set LOOPML_KEY to an API key first "
        "('loopml keys create --role predictor' prints one on its last line)."
    )
    for ex in d["examples"]:
        print(f"\n# {PROTOCOL_TITLES[ex['protocol']]}")
        print(ex["curl"])
    return 0
