"""``GET /openapi.json`` is generated from the route table and the API models, and a fuzz run
(schemathesis, loopback only, a key of each role) holds the server to it: no 5xx but a 503
that says why, every 4xx in the one error shape with a ``field``, no answer echoing more than
64 characters of client input, and every 200 matching its response model."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import serve_helpers as h
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as fuzzing
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from loopml.serve.access.auth import OPEN
from loopml.serve.http.application import ROUTES
from loopml.serve.http.openapi import OPERATIONS, document

EXAMPLES = 8  # per operation and mode, each sent with 6 identities: ~1,800 requests, ~30 s
ECHO = 64


def test_document_is_generated_from_the_route_table():
    doc = document(ROUTES, "test")
    assert doc["openapi"] == "3.1.0"
    for method, path, role, handler in ROUTES:
        op = doc["paths"][path][method.lower()]
        assert handler in OPERATIONS, handler.__name__  # every route is described
        assert op["x-loopml-role"] == role
        assert ("security" in op) == (role != OPEN)
    extra = (*ROUTES, ("GET", "/v1/new/{endpoint}", "viewer", ROUTES[-2][3]))
    new = document(extra, "test")["paths"]["/v1/new/{endpoint}"]["get"]
    assert new["parameters"][0]["name"] == "endpoint"  # a new route appears by itself
    body = doc["paths"]["/v1/endpoints/{endpoint}/deploy"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(doc["components"]["schemas"][ref]["properties"]) >= {"version", "canary", "shadow"}
    schemathesis.openapi.from_dict(doc)  # loads as a valid OpenAPI 3.1 document


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _client_strings(case: Any) -> list[str]:
    parts = [case.path_parameters, case.query, case.headers, case.body]
    return [s for p in parts if p for s in _strings(p) if len(s) > ECHO]


def _echoes(text: str, sent: list[str]) -> str | None:
    for s in sent:
        s = s[:2000]
        for i in range(len(s) - ECHO):
            if s[i : i + ECHO + 1] in text:
                return s[i : i + ECHO + 1]
    return None


def judge(case: Any, response: Any, problems: list[str]) -> None:
    """The gates of the module docstring for one answer."""
    code = response.status_code
    where = f"{case.method} {case.formatted_path} -> {code}"
    if code >= 500:
        body = _json(response)
        if code != 503 or not (body and body.get("field")):
            problems.append(f"{where}: a server error: {response.text[:300]}")
            return
    if code >= 400:
        body = _json(response)
        ok = (
            isinstance(body, dict)
            and isinstance(body.get("error"), str)
            and body["error"]
            and isinstance(body.get("field"), str)
            and body["field"]
            and body.get("status") == code
        )
        if not ok:
            problems.append(f"{where}: not the error shape with a field: {response.text[:300]}")
    echoed = _echoes(response.text, _client_strings(case))
    if echoed is not None:
        problems.append(f"{where}: echoes {len(echoed)}+ characters of input: {echoed[:80]!r}")
    if code == 200:
        try:
            case.validate_response(response, checks=[response_schema_conformance])
        except (Exception, BaseExceptionGroup) as exc:  # the answer is not its model
            problems.append(f"{where}: answer does not match the document: {str(exc)[:400]}")


def _json(response: Any) -> Any:
    try:
        return json.loads(response.text)
    except ValueError:
        return None


def fuzz(
    op: Any,
    mode: Any,
    url: str,
    identities: dict[str, dict[str, str]],
    seen: Counter[int],
    problems: list[str],
    session: Any,
) -> None:
    """``EXAMPLES`` generated requests to ``op``, each sent once per identity and judged
    (generating is the slow part: each case is made once)."""

    @given(case=op.as_strategy(generation_mode=mode))
    @fuzzing(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        for auth in identities.values():
            response = case.call(base_url=url, headers=auth, timeout=30, session=session)
            seen[response.status_code] += 1
            judge(case, response, problems)

    run()


LONG = "é" + "x" * 299  # longer than any echo may be


def long_inputs(op: Any) -> list[Any]:
    """Cases that put a 300-character string in every place a route reads one."""
    params = {
        p["name"]: LONG if p["name"] != "version" else "9" * 300
        for p in op.definition.raw.get("parameters", [])
        if p["in"] in ("path", "query")
    }
    path = {k: v for k, v in params.items() if "{" + k + "}" in op.path}
    query = {k: v for k, v in params.items() if k not in path}
    cases = [op.Case(path_parameters=path, query=query)]
    if op.method.upper() == "POST":
        bodies = [
            {LONG: LONG},
            {"rows": [{LONG: LONG}]},
            {"columns": [LONG, LONG], "data": [[1, 2]]},
            {"version": "9" * 300, "reason": LONG, "canary": LONG},
            {"labels": [{"request_id": LONG, "label": LONG}]},
            {"inputs": [{"name": LONG, "shape": [1], "datatype": LONG, "data": [1]}] * 2},
            {"inputs": [{"name": LONG, "shape": [1], "datatype": "FP64", "data": [1]}] * 2},
            {"dataframe_records": [{LONG: LONG}]},
            {"dataframe_split": {"columns": [LONG], "data": [[LONG]]}},
        ]
        cases = [
            op.Case(path_parameters=path, query=query, body=b, media_type="application/json")
            for b in bodies
        ]
    return cases


@pytest.mark.timeout(600)
def test_fuzz_every_route_with_every_role(settings, keys):
    with h.thread_server(settings) as (url, _app):
        doc = httpx.get(f"{url}/openapi.json").json()
        assert len(doc.get("paths", ())) == len({p for _, p, _, _ in ROUTES}), doc
        schema = schemathesis.openapi.from_dict(doc)
        identities = {role: h.bearer(key) for role, key in keys.items()} | {"none": {}}
        statuses: Counter[int] = Counter()
        problems: list[str] = []
        skipped: list[str] = []
        t0 = time.monotonic()
        session = requests.Session()  # one kept-alive connection, not one per request
        for result in schema.get_all_operations():
            op = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    fuzz(op, mode, url, identities, statuses, problems, session)
                except Unsatisfiable:  # nothing to negate (no parameters, no body)
                    skipped.append(f"{op.label} {mode.value}")
                except Exception as exc:  # a broken schema must not hide the rest
                    problems.append(f"{op.label} {mode.value}: {exc!r}"[:300])
            for case in long_inputs(op):
                for auth in identities.values():
                    response = case.call(base_url=url, headers=auth, timeout=30, session=session)
                    statuses[response.status_code] += 1
                    judge(case, response, problems)
        took = time.monotonic() - t0
    total = sum(statuses.values())
    print(
        f"\nfuzzed {total} requests in {took:.0f}s; statuses {dict(sorted(statuses.items()))}; "
        f"{len(set(skipped))} operation modes with nothing to generate"
    )
    assert not problems, "\n".join(sorted(set(problems))[:40])
    assert total > 1000


def test_quoted_echoes_are_capped_and_other_text_is_not():
    from loopml.serve.http.middleware import cap_quoted

    long = "x" * 300
    out = cap_quoted(f"No endpoint '{long}' (nor \"{long}\").")
    assert long[:65] not in out and out.count("...") == 2
    keep = "Endpoint 'broken' cannot load: check that 'artifacts' in loopml.yaml, it's fine " * 3
    assert cap_quoted(keep) == keep
