"""Handlers of the data-plane routes: the three prediction protocols, labels, health, metrics.

Each handler is ``async (request, runtime, principal) -> Response``; the route table in
:mod:`loopml.serve.http.application` wraps it with the role check. Prediction handlers only parse and
encode: the shared path (routing, validation, batching, shadows, log) is
:meth:`loopml.serve.inference.runtime.Runtime.predict`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from loopml.data.signature import Signature
from loopml.errors import DataError, NotFoundError, UnavailableError, UsageError
from loopml.serve.access.auth import Principal
from loopml.serve.http.middleware import JSON, read_body, require_json
from loopml.serve.http.prometheus import CONTENT_TYPE
from loopml.serve.inference.runtime import Answer, Runtime
from loopml.serve.wire.oip import encode_v2, parse_v2, v2_metadata
from loopml.serve.wire.protocols import (
    Request as Parsed,
)
from loopml.serve.wire.protocols import (
    dumps,
    encode_loopml,
    encode_mlflow,
    expect,
    loads,
    parse_loopml,
    parse_mlflow,
)
from loopml.serve.wire.tensors import HEADER as BINARY_HEADER
from loopml.store.registry import check_id
from loopml.store.rows import VersionRow

OCTET = "application/octet-stream"

_MAX_ID_HEADER = 100  # request ids echoed in X-Request-Ids for requests up to this many rows
_MAX_ENTITY_KEY = 256


def _json(obj: Any, status: int = 200) -> Response:
    return Response(dumps(obj), status_code=status, media_type=JSON)


def _entity_key(request: Request) -> str | None:
    key = request.headers.get("x-entity-key")
    if key is not None and len(key) > _MAX_ENTITY_KEY:
        raise DataError(
            f"X-Entity-Key is longer than {_MAX_ENTITY_KEY} characters.", field="x-entity-key"
        )
    return key


def _event_time(request: Request) -> str | None:
    value = request.headers.get("x-event-time")
    if value is not None and len(value) > 64:
        raise DataError(
            "X-Event-Time is longer than 64 characters; send an ISO 8601 time or Unix seconds.",
            field="x-event-time",
        )
    return value


def _pinned_version(request: Request) -> int | None:
    raw = request.path_params.get("version")
    return None if raw is None else check_id(raw)


def _headers(answer: Answer) -> dict[str, str]:
    headers = {"X-Model-Version": str(answer.version)}
    if len(answer.request_ids) <= _MAX_ID_HEADER:
        headers["X-Request-Ids"] = ",".join(answer.request_ids)
    return headers


async def _body(request: Request, rt: Runtime) -> bytes:
    return await read_body(request, rt.settings.serve.max_body_bytes)


# -- loopml JSON ------------------------------------------------------------------------------


async def predict(request: Request, rt: Runtime, who: Principal) -> Response:
    """``POST /v1/endpoints/{endpoint}/predict``."""
    require_json(request)
    body = await _body(request, rt)
    answer = await rt.predict(
        request.path_params["endpoint"],
        lambda sig: parse_loopml(body),
        _entity_key(request),
        event_time=_event_time(request),
    )
    return Response(
        encode_loopml(
            answer.request_ids,
            answer.predictions,
            answer.probabilities,
            answer.version,
            answer.classes,
        ),
        media_type=JSON,
        headers=_headers(answer),
    )


# -- MLflow scoring protocol ------------------------------------------------------------------


async def invocations(request: Request, rt: Runtime, who: Principal) -> Response:
    """``POST /endpoints/{endpoint}/invocations`` and ``POST /invocations``."""
    endpoint = request.path_params.get("endpoint") or rt.settings.default_endpoint
    if endpoint is None:
        raise UsageError(
            "This server has no default endpoint (deploy.endpoint in loopml.yaml); call "
            "/endpoints/{endpoint}/invocations instead.",
            field="endpoint",
        )
    ctype = request.headers.get("content-type")
    body = await _body(request, rt)
    answer = await rt.predict(
        endpoint,
        lambda sig: parse_mlflow(body, ctype, sig),
        _entity_key(request),
        event_time=_event_time(request),
    )
    return Response(encode_mlflow(answer.predictions), media_type=JSON, headers=_headers(answer))


# -- Open Inference Protocol (KServe V2) ------------------------------------------------------


async def v2_server(request: Request, rt: Runtime, who: Principal | None) -> Response:
    from loopml import __version__ as version

    return _json({"name": "loopml", "version": version, "extensions": ["binary_tensor_data"]})


async def v2_live(request: Request, rt: Runtime, who: Principal | None) -> Response:
    return _json({"live": True})


async def v2_ready(request: Request, rt: Runtime, who: Principal | None) -> Response:
    for wal in (rt.log.predictions, rt.log.labels):
        if wal.problem is not None:  # a full or unwritable log: send traffic elsewhere
            raise UnavailableError(
                f"Not ready: {wal.problem}. The server retries by itself.", field="log"
            )
    if not rt.watcher.ready():
        raise UnavailableError(
            "Not ready: models are still loading, or an endpoint's champion failed to load "
            "(GET /v1/endpoints shows which).",
            field="server",
        )
    return _json({"ready": True})


async def healthz(request: Request, rt: Runtime, who: Principal | None) -> Response:
    log_ok = rt.log.predictions.problem is None and rt.log.labels.problem is None
    return _json({"status": "ok", "ready": rt.watcher.ready() and log_ok})


async def v2_model(request: Request, rt: Runtime, who: Principal) -> Response:
    """``GET /v2/models/{endpoint}[/versions/{v}]``: the serving (or given) version's
    signature as V2 metadata."""
    name = request.path_params["endpoint"]
    st = rt.watcher.state(name)
    pinned = _pinned_version(request)
    if pinned is not None:
        row = await _version_of(rt, name, pinned)
        return _json(v2_metadata(name, [pinned], Signature.from_dict(row["signature"])))
    table = st.table()
    version, _ = table.route()
    loaded = rt.pool.get(version)
    return _json(v2_metadata(name, sorted(table.versions()), loaded.signature))


async def v2_model_ready(request: Request, rt: Runtime, who: Principal) -> Response:
    """``GET /v2/models/{endpoint}[/versions/{v}]/ready``: the endpoint can answer (or the
    version is one of its model's, not disabled: it loads on its first pinned request)."""
    name = request.path_params["endpoint"]
    version = _pinned_version(request)
    if version is None:
        err = rt.watcher.unavailable(name)
        if err is not None:
            raise err
        return _json({"name": name, "ready": True})
    row = await _version_of(rt, name, version)
    if row["status"] == "disabled":
        note = await asyncio.to_thread(rt.store.versions.disabled_note, version)
        raise UnavailableError(f"Not ready: {note}.", field="version")
    return _json({"name": name, "version": str(version), "ready": True})


async def _version_of(rt: Runtime, name: str, version: int) -> VersionRow:
    """The registry row of ``version``, a version of endpoint ``name``'s model (else 404)."""
    st = rt.watcher.state(name)
    row = await asyncio.to_thread(rt.store.versions.get, version)
    if st.row is None or row["model"] != st.row["model"]:
        raise NotFoundError(
            f"Version {version} is not a version of endpoint {name[:64]!r}'s model.",
            field="version",
        )
    return row


def _require_v2_type(request: Request) -> str | None:
    """The binary extension's header length (``None`` for a JSON body); a binary body may
    come as ``application/octet-stream``, a JSON one only as JSON."""
    header_length = request.headers.get(BINARY_HEADER)
    ctype = request.headers.get("content-type", "")
    if header_length is None or ctype.partition(";")[0].strip().lower() != OCTET:
        require_json(request)
    return header_length


async def v2_infer(request: Request, rt: Runtime, who: Principal) -> Response:
    """``POST /v2/models/{endpoint}[/versions/{v}]/infer``, JSON or with the binary tensor
    extension; with a version, that version answers (see ``Runtime._pinned``)."""
    header_length = _require_v2_type(request)
    name = request.path_params["endpoint"]
    version = _pinned_version(request)
    body = await _body(request, rt)
    answer = await rt.predict(
        name,
        lambda sig: parse_v2(body, sig, header_length),
        _entity_key(request),
        event_time=_event_time(request),
        version=version,
    )
    req: Parsed = answer.request
    content, head = encode_v2(
        name,
        answer.version,
        req.id or answer.request_ids[0],
        answer.predictions,
        answer.probabilities,
        req.outputs,
        req.binary_outputs,
    )
    headers = _headers(answer)
    if head is None:
        return Response(content, media_type=JSON, headers=headers)
    headers["Inference-Header-Content-Length"] = str(head)
    return Response(content, media_type=OCTET, headers=headers)


# -- labels and metrics -----------------------------------------------------------------------


def parse_labels(body: bytes) -> dict[str, Any]:
    """``{"labels": [{"request_id": "...", "label": ...}, ...]}`` -> ``{request_id: label}``."""
    doc = loads(body)
    expect(
        isinstance(doc, dict) and isinstance(doc.get("labels"), list) and doc["labels"],
        'The body must be {"labels": [{"request_id": ..., "label": ...}, ...]}.',
        "labels",
    )
    out: dict[str, Any] = {}
    for i, item in enumerate(doc["labels"]):
        field = f"labels[{i}]"
        expect(isinstance(item, dict), f"'{field}' must be an object.", field)
        rid, label = item.get("request_id"), item.get("label")
        expect(
            isinstance(rid, str) and 0 < len(rid) <= 64,
            f"'{field}.request_id' must be a request id string.",
            f"{field}.request_id",
        )
        expect(
            isinstance(label, str | int | float | bool) and label == label,
            f"'{field}.label' must be a number, a string or a boolean.",
            f"{field}.label",
        )
        out[rid] = label
    return out


async def labels(request: Request, rt: Runtime, who: Principal) -> Response:
    """``POST /v1/labels``: durable like predictions; unknown request ids are reported back
    (with a remote log root, recent ones are kept as ``pending`` and looked up again)."""
    require_json(request)
    mapping = parse_labels(await _body(request, rt))
    if who.endpoints is not None:  # a scoped key labels only its endpoints' predictions
        for endpoint in set(rt.log.known_request_ids(mapping).values()):
            who.require(endpoint)
    unknown, held = await rt.label(mapping, who.endpoints)
    answer: dict[str, Any] = {"accepted": len(mapping) - len(unknown) - len(held)}
    answer["unknown"] = unknown
    if rt.log.pending is not None:  # a remote log root: see loopml.logs.pending
        answer["pending"] = held
    return _json(answer)


async def metrics(request: Request, rt: Runtime, who: Principal | None) -> Response:
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE)
