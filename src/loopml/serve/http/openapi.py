"""``GET /openapi.json``: the API's OpenAPI 3.1 document, generated, never written by hand.

Paths, methods and the role each operation needs come from the route table
(:data:`loopml.serve.http.application.ROUTES`); bodies and answers are the pydantic models of
:mod:`loopml.serve.http.apimodels` (their JSON Schema is OpenAPI 3.1's dialect as is). What this
module adds per handler (:data:`OPERATIONS`) is what the route table cannot say: a summary,
which models, the query parameters. A route without an entry still appears, with a generic
answer, so the document can never miss a route; the tests check every route has one.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from loopml.serve.access.auth import OPEN
from loopml.serve.http import admin, handlers
from loopml.serve.http import apimodels as m
from loopml.serve.http import explain_route as explaining
from loopml.store.endpoints import ENDPOINT_NAME

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    """What the route table does not say about a route."""

    summary: str
    body: tuple[type[BaseModel], ...] = ()  # one of these (JSON)
    answer: type[BaseModel] | None = None
    many: bool = False  # the answer is a list of ``answer``
    query: tuple[tuple[str, dict[str, Any], str], ...] = ()
    csv: bool = False  # also reads text/csv
    text: bool = False  # answers text/plain
    entity_key: bool = False  # reads X-Entity-Key
    extra: dict[str, Any] = field(default_factory=dict)


_LIMIT = ("limit", {"type": "integer", "minimum": 1, "maximum": 10_000}, "At most this many rows.")
_STR = {"type": "string", "maxLength": 200}

OPERATIONS: dict[Any, Operation] = {
    handlers.healthz: Operation("Liveness and readiness in one answer.", answer=m.HealthAnswer),
    handlers.metrics: Operation("Prometheus metrics (text format).", text=True),
    handlers.v2_server: Operation("V2 server metadata.", answer=m.V2ServerAnswer),
    handlers.v2_live: Operation("V2 liveness.", answer=m.LiveAnswer),
    handlers.v2_ready: Operation(
        "V2 readiness: 503 while models load or the prediction log cannot be written.",
        answer=m.ReadyAnswer,
    ),
    handlers.v2_model: Operation(
        "V2 model metadata: one input per column.", answer=m.V2ModelAnswer
    ),
    handlers.v2_model_ready: Operation("V2 model readiness.", answer=m.ModelReadyAnswer),
    handlers.v2_infer: Operation(
        "Predict (Open Inference Protocol / KServe V2).",
        body=(m.V2InferBody,),
        answer=m.V2InferAnswer,
        entity_key=True,
    ),
    handlers.predict: Operation(
        "Predict (loopml JSON): rows, or columns + data.",
        body=(m.RowsBody, m.ColumnsBody),
        answer=m.PredictAnswer,
        entity_key=True,
    ),
    explaining.explain: Operation(
        "Explain predictions: Shapley attributions per original column, exact for trees and "
        "linear models (value = base_value + sum of attributions).",
        body=(m.RowsBody, m.ColumnsBody, m.RequestIdsBody),
        answer=m.ExplainAnswer,
        query=(
            ("class", _STR, "The class whose probability is explained (default: the first)."),
            ("method", _STR, "exact, native or permutation (default: the best that applies)."),
        ),
    ),
    handlers.invocations: Operation(
        "Predict (MLflow scoring protocol), JSON or CSV.",
        body=(m.MLflowBody,),
        answer=m.MLflowAnswer,
        csv=True,
        entity_key=True,
    ),
    handlers.labels: Operation(
        "Ground truth by request id, any time after the prediction.",
        body=(m.LabelsBody,),
        answer=m.LabelsAnswer,
    ),
    admin.list_endpoints: Operation(
        "Endpoints and what this server serves.", answer=m.EndpointRow, many=True
    ),
    admin.get_endpoint: Operation("One endpoint.", answer=m.EndpointRow),
    admin.deploy: Operation(
        "Put a version on the endpoint: champion, canary (percent) or shadow.",
        body=(m.DeployBody,),
        answer=m.EndpointRow,
    ),
    admin.promote: Operation(
        "Make a version the champion.", body=(m.PromoteBody,), answer=m.EndpointRow
    ),
    admin.rollback: Operation(
        "Drop the canary and shadows, or go back to the previous champion.",
        body=(m.Reason,),
        answer=m.EndpointRow,
    ),
    admin.list_versions: Operation(
        "Model versions, newest first.",
        answer=m.VersionRow,
        many=True,
        query=(("model", _STR, "Only this model."), ("status", _STR, "Only this status."), _LIMIT),
    ),
    admin.get_version: Operation("One model version.", answer=m.VersionRow),
    admin.disable: Operation(
        "Kill switch: take the version out of every endpoint at once.",
        body=(m.Reason,),
        answer=m.DisableAnswer,
    ),
    admin.enable: Operation(
        "Undo the kill switch (admin): the version returns as a candidate, in no traffic.",
        body=(m.Reason,),
        answer=m.EnableAnswer,
    ),
    admin.list_decisions: Operation(
        "Decisions and audit log, newest first.",
        answer=m.DecisionRow,
        many=True,
        query=(
            ("endpoint", _STR, "Only this endpoint."),
            ("actor", _STR, "Only this actor."),
            ("action", _STR, "Only this action."),
            _LIMIT,
        ),
    ),
    admin.list_alerts: Operation(
        "Alerts, newest first.",
        answer=m.AlertRow,
        many=True,
        query=(
            ("status", {"type": "string", "enum": ["open", "resolved"]}, "Open or resolved."),
            ("endpoint", _STR, "Only this endpoint."),
            ("rule", _STR, "Only this rule."),
            _LIMIT,
        ),
    ),
    admin.list_windows: Operation(
        "The endpoint's newest monitor windows, oldest first.",
        answer=m.WindowRow,
        many=True,
        query=(_LIMIT,),
    ),
    admin.list_keys: Operation("API keys (never the keys themselves).", answer=m.KeyRow, many=True),
}

_PARAMS = {
    "endpoint": {"type": "string", "pattern": ENDPOINT_NAME.pattern},
    "version": {"type": "integer", "minimum": 1},
}
_MODELS: tuple[type[BaseModel], ...] = (
    *{mod: None for op in OPERATIONS.values() for mod in (*op.body, op.answer) if mod},
    m.ErrorBody,
)


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": REF.format(model=model.__name__)}


def _operation(method: str, path: str, role: str, handler: Any) -> dict[str, Any]:
    op = OPERATIONS.get(handler, Operation(handler.__doc__ or handler.__name__))
    out: dict[str, Any] = {
        "operationId": handler.__name__,
        "summary": op.summary,
        "description": "Open: no key needed."
        if role == OPEN
        else f"Needs a key with the role '{role}' or higher (viewer < predictor < labeller "
        "< deployer < admin); a scoped key only for its endpoints.",
        "x-loopml-role": role,
    }
    if role != OPEN:
        out["security"] = [{"bearer": []}, {"session": []}]
    params = [
        {"name": n, "in": "path", "required": True, "schema": _PARAMS.get(n, {"type": "string"})}
        for n in re.findall(r"{(\w+)}", path)
    ]
    params += [
        {"name": n, "in": "query", "required": False, "schema": s, "description": d}
        for n, s, d in op.query
    ]
    if op.entity_key:
        params.append(
            {
                "name": "X-Entity-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 256},
                "description": "Makes canary routing sticky for this entity.",
            }
        )
    if params:
        out["parameters"] = params
    if method == "POST":
        schema = _ref(op.body[0]) if len(op.body) == 1 else {"oneOf": [_ref(b) for b in op.body]}
        content: dict[str, Any] = {
            "application/json": {"schema": schema if op.body else {"type": "object"}}
        }
        if op.csv:
            content["text/csv"] = {"schema": {"type": "string"}}
        out["requestBody"] = {"required": True, "content": content}
    ok: dict[str, Any]
    if op.text:
        ok = {"text/plain": {"schema": {"type": "string"}}}
    elif op.answer is None:
        ok = {"application/json": {"schema": {"type": "object"}}}
    else:
        answer = _ref(op.answer)
        ok = {
            "application/json": {
                "schema": {"type": "array", "items": answer} if op.many else answer
            }
        }
    error = {"application/json": {"schema": _ref(m.ErrorBody)}}
    out["responses"] = {
        "200": {"description": "OK", "content": ok},
        "4XX": {"description": "The request cannot be served as sent.", "content": error},
        "5XX": {"description": "Not ready, or the log cannot be written.", "content": error},
    }
    return out


def document(routes: tuple[tuple[str, str, str, Any], ...], version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (the serving app's route table)."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, role, handler in routes:
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, role, handler)
    _, defs = models_json_schema([(mod, "validation") for mod in _MODELS], ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "loopml",
            "version": version,
            "description": "Serving, labels and traffic of a loopml server. Errors have one "
            'shape: {"error", "field", "status"}.',
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key."},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "loopml_session",
                    "description": "The dashboard's signed session (from POST /login).",
                },
            },
        },
    }


@functools.cache
def document_bytes() -> bytes:
    """The serving app's document as JSON (built once per process)."""
    import json

    from loopml import __version__
    from loopml.serve.http.application import ROUTES

    return json.dumps(document(ROUTES, __version__)).encode()


async def openapi_json(request: Any, rt: Any, who: Any) -> Any:
    """``GET /openapi.json``."""
    from starlette.responses import Response

    return Response(document_bytes(), media_type="application/json")


OPERATIONS[openapi_json] = Operation("This document: the API as OpenAPI 3.1.")
