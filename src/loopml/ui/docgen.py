"""The generated pages of the documentation site, built from the code so they cannot drift:

* the ``loopml.yaml`` reference, walked from the pydantic models of ``loopml.config``
  (every key, the gates' options included, with its type, default, bounds and description; the
  descriptions come from ``Field(description=...)`` or ``loopml.ui.config_keys``);
* the command line, from the argparse parser;
* the HTTP API, from the serving app's route table.

``docs/hooks.py`` adds these pages to the MkDocs build; ``tests/ui/test_docs.py`` fails when
a key has no description.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Key:
    path: str
    type: str
    default: str
    description: str | None


def _is_duration(info: Any) -> bool:
    from loopml.config.fields import parse_duration

    return any(getattr(m, "func", None) is parse_duration for m in info.metadata)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _type_name(ann: Any) -> str:
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is list:
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict or ann is dict:
        return "mapping"
    if ann is Any:
        return "any"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "section"
    return {str: "text", int: "integer", float: "number", bool: "true/false"}.get(
        ann, getattr(ann, "__name__", str(ann))
    )


def _bounds(info: Any) -> str:
    ops = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    out = []
    for m in info.metadata:
        for attr, op in ops.items():
            if getattr(m, attr, None) is not None and type(m).__name__.lower() == attr:
                out.append(f"{op} {getattr(m, attr):g}")
    return ", ".join(out)


def _default(info: Any, duration: bool) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(see below)"
    if value is None:
        return "unset"
    if duration and isinstance(value, int | float):
        return _duration(float(value))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict) and not value:
        return "[]" if isinstance(value, list) else "{}"
    return f"{value}"


def _section(ann: Any) -> tuple[type[BaseModel] | None, bool]:
    """The section model inside ``ann`` (optional or a list of them), and whether a list."""
    for a in (ann, *typing.get_args(ann)):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a, False
        if typing.get_origin(a) is list:
            inner = typing.get_args(a)
            if inner and isinstance(inner[0], type) and issubclass(inner[0], BaseModel):
                return inner[0], True
    return None, False


def _any_gate(path: str) -> str:
    """'gates.data.blocking' -> 'gates.*.blocking': options every gate has, described once."""
    parts = path.split(".")
    return ".".join(["gates", "*", *parts[2:]]) if len(parts) == 3 and parts[0] == "gates" else ""


def _walk(model: type[BaseModel], prefix: str, described: dict[str, str]) -> list[Key]:
    out = []
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        path = f"{prefix}{name}"
        duration = _is_duration(info)
        sub, many = _section(info.annotation)
        kind = "duration" if duration else _type_name(info.annotation)
        if sub is not None:
            kind = ("list of " if many else "") + "section"
        bounds = _bounds(info)
        out.append(
            Key(
                path,
                kind + (f" ({bounds})" if bounds else ""),
                _default(info, duration),
                info.description or described.get(path) or described.get(_any_gate(path)),
            )
        )
        if sub is not None:
            out += _walk(sub, f"{path}[]." if many else f"{path}.", described)
    return out


def config_keys() -> list[Key]:
    """Every key of loopml.yaml, in file order, with its documentation."""
    from loopml.config.sections import Config
    from loopml.ui.config_keys import DESCRIPTIONS

    return _walk(Config, "", DESCRIPTIONS)


def undocumented() -> list[str]:
    """Keys that have no description (the test of the docs fails on any)."""
    return [k.path for k in config_keys() if not k.description]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") if "\\|" not in text else text


def config_reference() -> str:
    keys = config_keys()
    lines = [
        "# loopml.yaml reference",
        "",
        "Generated from the configuration models (`loopml.config.sections`, "
        "`loopml.config.gate_options`) when the site is built: every key, its type, default and meaning. Durations "
        "take `90d`, `1h`, `30m`, `5s`, `250ms` or plain seconds. A key not listed here is "
        "an error (`loopml run` names it, with its line).",
        "",
    ]
    header = ["| key | type | default | meaning |", "|---|---|---|---|"]

    def row(k: Key) -> str:
        return (
            f"| `{k.path}` | {_cell(k.type)} | `{_cell(k.default)}` | "
            f"{_cell(k.description or '')} |"
        )

    sections = [k for k in keys if "." not in k.path and k.type.endswith("section")]
    lines += ["## Top level", "", *header]
    lines += [row(k) for k in keys if "." not in k.path and k not in sections]
    for sec in sections:
        lines += ["", f"## `{sec.path}`", "", sec.description or "", ""]
        if sec.default == "required":
            lines += ["Required.", ""]
        lines += header
        lines += [row(k) for k in keys if k.path.startswith(sec.path + ".")]
    return "\n".join(lines) + "\n"


def cli_reference() -> str:
    import argparse

    from loopml.cli.parser import build_parser

    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {a.dest: a.help for a in sub._choices_actions}
    lines = [
        "# Command line",
        "",
        "Generated from `loopml`'s parser. Every command takes `-c PATH` (the project's "
        "`loopml.yaml` or its folder) before or after the command name. Exit codes: 0 ok, "
        "1 gates failed or a conflict, 2 bad usage or configuration (or not found), 3 a failure in your code or in loopml. Times are "
        "UTC. Tables fit the terminal; `--wide` shows every column.",
        "",
    ]
    for name, sp in sub.choices.items():
        lines += [f"## `loopml {name}`", "", helps.get(name) or "", "", "```text"]
        lines += [sp.format_usage().strip().removeprefix("usage: "), "```", ""]
        rows = []
        for a in sp._actions:
            if isinstance(a, argparse._HelpAction) or a.dest == "config":
                continue
            what = ", ".join(a.option_strings) or (a.metavar or a.dest)
            extra = f" One of: {', '.join(map(str, a.choices))}." if a.choices else ""
            rows.append(f"| `{what}` | {_cell((a.help or '') + extra)} |")
        if rows:
            lines += ["| argument | meaning |", "|---|---|", *rows, ""]
    return "\n".join(lines) + "\n"


def http_reference() -> str:
    from loopml.serve.http.application import ROUTES

    lines = [
        "# HTTP API",
        "",
        "Generated from the server's route table (`loopml.serve.http.application.ROUTES`). Authenticate "
        "with `Authorization: Bearer KEY`; a key's role must be at least the one listed "
        "(viewer < predictor < labeller < deployer < admin; `open` needs no key). Errors "
        'have one shape: `{"error": "...", "field": "...", "status": 422}`. '
        "`loopml describe ENDPOINT` prints a ready-to-paste request per protocol.",
        "",
        "| method | path | role | what it does |",
        "|---|---|---|---|",
    ]
    for method, path, role, handler in ROUTES:
        doc = ROUTE_NOTES.get(path) or (handler.__doc__ or "").strip().split("\n\n")[0]
        lines.append(f"| {method} | `{path}` | {role} | {_cell(doc.replace(chr(10), ' '))} |")
    return "\n".join(lines) + "\n"


# What each route does, where its handler's docstring does not say it in a sentence.
ROUTE_NOTES = {
    "/healthz": "The process is up (for load balancers).",
    "/metrics": "Prometheus text format: requests, rows, latency, errors by endpoint and version.",
    "/v2": "V2 server metadata.",
    "/v2/health/live": "V2 liveness.",
    "/v2/health/ready": "V2 readiness: every endpoint's models are loaded.",
    "/v2/models/{endpoint}": "V2 model metadata: one input per column with its datatype.",
    "/v2/models/{endpoint}/ready": "V2: this endpoint's models are loaded.",
    "/v2/models/{endpoint}/infer": "V2 inference: one input per column (BYTES for text, "
    "INT64/FP64 for numbers, shape [n]); an all-numeric model also takes one [n, features] "
    "tensor.",
    "/v1/endpoints/{endpoint}/predict": 'loopml JSON: `{"rows": [{...}]}` or `{"columns": [...], '
    '"data": [[...]]}`; answers `request_ids`, `predictions`, `probabilities` with their '
    "`classes`, and `model_version`. Header `X-Entity-Key` makes canary routing sticky.",
    "/endpoints/{endpoint}/invocations": "MLflow scoring protocol (`dataframe_split`, "
    "`dataframe_records`, `instances`, `inputs`); MLflow clients use the base URL "
    "`http://host/endpoints/{endpoint}`.",
    "/invocations": "MLflow scoring protocol on the only endpoint of a one-endpoint server.",
    "/v1/labels": 'Ground truth by request id, any time after the prediction: `{"labels": '
    '[{"request_id": "...", "label": 1}]}`; unknown ids are reported back (with a remote '
    "`log.root`, recent ones another replica has not compacted yet come back as `pending`: "
    "kept and looked up again until `log.label_wait`).",
    "/v1/endpoints": "Every endpoint with its traffic (champion, canary and weight, shadows).",
    "/v1/endpoints/{endpoint}": "One endpoint with its traffic.",
    "/v1/endpoints/{endpoint}/deploy": 'Put a version on the endpoint: `{"version": 3}`, '
    'optionally `"canary": 10` or `"shadow": true`.',
    "/v1/endpoints/{endpoint}/promote": "Make a version the champion.",
    "/v1/endpoints/{endpoint}/rollback": "Drop the canary and shadows, or return to the "
    "previous champion.",
    "/v1/versions": "Every version: status, metrics, gates, digests, lineage.",
    "/v1/versions/{version}": "One version with its card data.",
    "/v1/versions/{version}/disable": "The kill switch: out of all traffic at once.",
    "/v1/decisions": "The decisions log, newest first, with evidence.",
    "/v1/alerts": "Open and recent alerts.",
    "/v1/monitors/{endpoint}": "The endpoint's monitoring windows.",
    "/v1/keys": "API keys (never the secrets).",
}

PAGES = {
    "reference/configuration.md": config_reference,
    "reference/cli.md": cli_reference,
    "reference/http.md": http_reference,
}
