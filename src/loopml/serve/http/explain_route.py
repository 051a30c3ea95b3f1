"""``POST /v1/endpoints/{endpoint}/explain``: why the endpoint's model gives these rows their
score (per-row Shapley attributions, :mod:`loopml.evaluate.xai.explain`).

Body: the predict body (``{"rows": [...]}`` or ``{"columns", "data"}``), explained by the
version serving the endpoint (the champion; ``X-Entity-Key`` routes as for predict), or
``{"request_ids": [...]}``: logged predictions of this endpoint, explained with the version
that answered them and the rows as they were logged. Query options: ``class`` (the class
whose output is explained) and ``method`` (``auto``, ``tree``, ``native``, ``linear``,
``permutation``). Nothing is logged: an explanation is not a prediction.

Explainers are built once per loaded model and option set (building one converts the trees,
~1 s for the employment model) and kept while the model is loaded.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from starlette.requests import Request
from starlette.responses import Response

from loopml.errors import DataError, NotFoundError
from loopml.logs.layout import request_id_millis
from loopml.logs.logreader import read_log
from loopml.serve.access.auth import Principal
from loopml.serve.http.middleware import JSON, read_body, require_json
from loopml.serve.inference.pool import Loaded
from loopml.serve.inference.runtime import Runtime
from loopml.serve.wire.protocols import dumps, expect, loads, parse_loopml

MAX_IDS = 1000
ANSWERING_ROLES = ("champion", "canary", "batch")  # not shadow/paired: those answered no one

_cache: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], Any]] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def _explainer(rt: Runtime, loaded: Loaded, target_class: str | None, method: str) -> Any:
    from loopml.evaluate.xai.background import version_explainer

    key = (str(target_class), method)
    with _cache_lock:
        try:
            per_model = _cache.setdefault(loaded.model, {})
        except TypeError:  # a model object that takes no weak reference: build per request
            per_model = {}
        entry = per_model.get(key)
        if entry is None:
            entry = (
                version_explainer(
                    rt.pool.artifacts,
                    loaded.row,
                    loaded.model,
                    target_class=target_class,
                    method=method,
                ),
                threading.Lock(),
            )
            per_model[key] = entry
    return entry


def _explain(
    rt: Runtime, loaded: Loaded, frame: Any, query: Any, ids: list[Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    explainer, lock = _explainer(rt, loaded, query.get("class"), query.get("method", "auto"))
    with lock:  # the first call sets the explainer up; shap's objects are not thread-safe
        result = explainer.explain(frame)
    return {
        "model_version": loaded.id,
        "output": result.output,
        "explanations": result.rows(ids),
    }, _headers(result, loaded.id)


def _headers(result: Any, version: int) -> dict[str, str]:
    """How the attributions were computed (the body keeps the documented shape)."""
    headers = {
        "X-Model-Version": str(version),
        "X-Explanation-Method": result.method,
        "X-Explanation-Exact": str(result.exact),
    }
    if result.notes:
        headers["X-Explanation-Notes"] = (
            " | ".join(result.notes).encode("ascii", "replace")[:1000].decode()
        )
    return headers


async def _loaded(rt: Runtime, version: int) -> Loaded:
    loaded = rt.pool.loaded.get(version)
    if loaded is None:  # a version that answered then and is no longer served
        loaded = await asyncio.to_thread(rt.pool.load_sync, version)
    return loaded


def _logged_rows(rt: Runtime, endpoint: str, ids: list[str]) -> pa.Table:
    millis = [m for m in map(request_id_millis, ids) if m is not None]
    start = end = None
    if len(millis) == len(ids):  # every id says when it was made: read only those hours
        lo, hi = min(millis), max(millis)
        start = datetime.fromtimestamp(lo / 1000, UTC) - timedelta(minutes=1)
        end = datetime.fromtimestamp(hi / 1000, UTC) + timedelta(hours=1)
    table = read_log(rt.settings.log, endpoint, start, end)
    table = table.filter(pc.is_in(table.column("_request_id"), value_set=pa.array(ids)))
    return table.filter(pc.is_in(table.column("_role"), value_set=pa.array(ANSWERING_ROLES)))


async def _by_request_ids(
    rt: Runtime, endpoint: str, doc: dict, query: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    ids = doc["request_ids"]
    expect(
        isinstance(ids, list) and 0 < len(ids) <= MAX_IDS and all(isinstance(i, str) for i in ids),
        f"'request_ids' must be a list of 1 to {MAX_IDS} request id strings.",
        "request_ids",
    )
    expect(doc.keys() == {"request_ids"}, "Send either rows or 'request_ids', not both.", "body")
    table = await asyncio.to_thread(_logged_rows, rt, endpoint, list(dict.fromkeys(ids)))
    found = table.column("_request_id").to_pylist()
    missing = [i for i in ids if i not in set(found)]
    if missing:
        raise NotFoundError(
            f"No logged prediction of endpoint {endpoint!r} has request id(s) "
            f"{', '.join(missing[:5])}. Send the rows instead, or check the endpoint.",
            field="request_ids",
        )
    first = {rid: i for i, rid in reversed(list(enumerate(found)))}
    versions = np.asarray(table.column("_version").to_numpy(zero_copy_only=False), dtype=np.int64)
    by_version: dict[int, list[str]] = {}
    for rid in ids:
        by_version.setdefault(int(versions[first[rid]]), []).append(rid)
    answers = {}
    for version, vids in by_version.items():
        loaded = await _loaded(rt, version)
        rows = table.take(pa.array([first[r] for r in vids]))
        columns = {
            c: rows.column(c).to_pylist() if c in rows.column_names else [None] * rows.num_rows
            for c in loaded.signature.names
        }
        frame = loaded.validator.frame(loaded.validator.validate(columns))
        answers[version] = await asyncio.to_thread(_explain, rt, loaded, frame, query, vids)
    explained = {e["request_id"]: e for a, _ in answers.values() for e in a["explanations"]}
    last, headers = answers[max(answers)]
    out = {k: v for k, v in last.items() if k != "explanations"}
    if len(answers) > 1:  # rows answered by different versions: each row says which
        out["model_version"] = sorted(answers)
        for version, vids in by_version.items():
            for rid in vids:
                explained[rid]["model_version"] = version
    out["explanations"] = [explained[r] for r in ids]
    return out, headers


async def explain(request: Request, rt: Runtime, who: Principal) -> Response:
    """``POST /v1/endpoints/{endpoint}/explain``; see the module docstring."""
    require_json(request)
    endpoint = request.path_params["endpoint"]
    body = await read_body(request, rt.settings.serve.max_body_bytes)
    query = request.query_params
    method = query.get("method", "auto")
    from loopml.evaluate.xai.explain import METHODS

    if method not in METHODS:
        raise DataError(
            f"'method' must be one of {', '.join(METHODS)}; got {method!r}.", field="method"
        )
    doc = loads(body)
    if isinstance(doc, dict) and "request_ids" in doc:
        rt.watcher.state(endpoint)  # 404 for an unknown endpoint
        answer, headers = await _by_request_ids(rt, endpoint, doc, query)
        return Response(dumps(answer), media_type=JSON, headers=headers)
    parsed = parse_loopml(body)
    version, _ = rt.watcher.state(endpoint).table().route(request.headers.get("x-entity-key"))
    loaded = rt.pool.get(version)
    # declared context columns (data.id, time, sensitive) ride along as in predict: not inputs
    context = set(getattr(rt.settings, "context_columns", ())) - set(loaded.signature.names)
    columns = {k: v for k, v in parsed.columns.items() if k not in context}
    frame = loaded.validator.frame(loaded.validator.validate(columns))
    ids = [None] * len(frame)
    answer, headers = await asyncio.to_thread(_explain, rt, loaded, frame, query, ids)
    return Response(dumps(answer), media_type=JSON, headers=headers)
