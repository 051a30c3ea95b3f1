"""Reading ``loopml.yaml``: ``${VAR}`` interpolation, YAML with 1.2 booleans, a map from key
paths to line numbers, and pydantic errors rewritten as ``ConfigError`` messages that name the
file, the line, the key and what is allowed.

``${VAR}`` (and ``${VAR:-default}``) is substituted into the *parsed* string values, never
into the raw text: a value holding ``#``, ``: `` or a newline stays one string and cannot
change the file's structure (a secret ending a key early, or adding keys). Keys and comments
are left alone.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from loopml.config.sections import CONFIG_NAME, Config
from loopml.errors import ConfigError


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


def _interpolate(value: Any, source: str, lines: dict[tuple[Any, ...], int], path=()) -> Any:
    """``value`` (parsed YAML) with ``${VAR}`` substituted in every string it holds."""
    if isinstance(value, dict):
        return {k: _interpolate(v, source, lines, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, source, lines, (*path, i)) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        line = next((lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in lines), None)
        where = f"{source}, line {line}" if line else source
        raise ConfigError(
            f"{where}: environment variable ${{{name}}} is not set. "
            f"Set it, or give a default as ${{{name}:-value}}."
        )

    return _ENV.sub(sub, value)


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


def _model_at(loc: tuple[Any, ...], root: type[BaseModel] = Config) -> type[BaseModel] | None:
    """The pydantic model that owns the last key of ``loc`` (to suggest close keys)."""
    model: Any = root
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


@dataclass(frozen=True)
class _Read:
    """What a validation error is explained against: the file (None for options given in
    code), its key lines, the values as read, the model they were read with and where that
    model's keys sit in loopml.yaml."""

    source: str | None
    lines: dict[tuple[Any, ...], int]
    raw: Any
    root: type[BaseModel] = Config
    prefix: tuple[Any, ...] = ()


def _explain(err: dict[str, Any], read: _Read) -> str:
    source, lines, raw, root, prefix = read.source, read.lines, read.raw, read.root, read.prefix
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
    key = ".".join(str(p) for p in (*prefix, *loc)) or "(top level)"
    is_key = bool(err["loc"]) and err["loc"][-1] == "[key]"  # a mapping's key, not its value
    line = None
    for n in range(len(loc), -1, -1):
        line = lines.get(loc[:n])
        if line:
            break
    where = (f"{source}, line {line}: " if line else f"{source}: ") if source else ""
    value = raw
    for p in loc:
        if isinstance(value, dict) and p not in value:
            continue  # a key a shorthand left out (gates.metrics: {accuracy: ...})
        try:
            value = value[p]
        except (IndexError, TypeError):
            value = None
            break
    kind = err["type"]
    if kind == "extra_forbidden":
        owner = _model_at(loc, root)
        allowed = sorted(owner.model_fields) if owner else []
        allowed = [a for a in allowed if a != "root"]
        near = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" Did you mean '{near[0]}'?" if near else ""
        return f"{where}unknown key '{key}'.{hint} Allowed keys here: {', '.join(allowed)}."
    if kind == "missing":
        return f"{where}'{key}' is required but missing."
    msg = err["msg"]
    for lead in ("Value error, ", "Input should be "):
        if msg.startswith(lead):
            msg = msg[len(lead) :]
    if is_key:
        parent = ".".join(str(p) for p in (*prefix, *loc[:-1]))
        return f"{where}a key of '{parent}' must be {msg}. Got {loc[-1]!r} instead."
    if isinstance(value, dict | list):
        return f"{where}'{key}': {msg}."
    return f"{where}'{key}' must be {msg[0].lower() + msg[1:]}. Got {value!r} instead."


def _explain_all(exc: PydanticValidationError, read: _Read) -> ConfigError:
    """One ``ConfigError`` for a pydantic error (its first five problems); ``field`` names the
    first key at fault."""
    errors = exc.errors()
    # a misspelt key shows up twice (unknown + missing): keep the "did you mean" one
    typos = {
        (*err["loc"][:-1], near)
        for err in errors
        if err["type"] == "extra_forbidden" and (owner := _model_at(tuple(err["loc"]), read.root))
        for near in difflib.get_close_matches(str(err["loc"][-1]), list(owner.model_fields), n=1)
    }
    errors = [e for e in errors if not (e["type"] == "missing" and tuple(e["loc"]) in typos)]
    problems = [_explain(dict(err), read) for err in errors]
    first = [p for p in errors[0]["loc"] if not (isinstance(p, str) and "[" in p)]
    field = ".".join(str(p) for p in (*read.prefix, *first)) or None
    return ConfigError(" ".join(problems[:5]), field=field)


def options_error(
    exc: PydanticValidationError, model: type[BaseModel], key: tuple[str, ...], given: Any
) -> ConfigError:
    """A pydantic error of options given in code (not read from a file), e.g. a gate's, as
    the ``ConfigError`` the file would give without its line: ``key`` is where the options
    sit in loopml.yaml (``("gates", "data")``) and ``given`` what was passed."""
    return _explain_all(exc, _Read(None, {}, given, model, key))


def parse_config(text: str, *, source: str = CONFIG_NAME, root: Path | None = None) -> Config:
    """Validate a loopml.yaml document given as text."""
    try:
        node = yaml.compose(text, Loader=_Loader)
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        text_lines = text.splitlines()
        bad_line = text_lines[mark.line] if mark and mark.line < len(text_lines) else ""
        hint = " Inside [...] or {...}, quote a ${VAR} value: '${VAR}'." if "${" in bad_line else ""
        raise ConfigError(
            f"{source}{line}: not valid YAML ({getattr(e, 'problem', e)}).{hint}"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping of keys such as 'project:', 'data:', 'model:'."
        )
    lines = _line_map(node) if node is not None else {}
    raw = _interpolate(raw, source, lines)
    try:
        cfg = Config.model_validate(raw)
    except PydanticValidationError as e:
        raise _explain_all(e, _Read(source, lines, raw)) from None
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
