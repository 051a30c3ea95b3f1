"""What an endpoint or a version takes and answers, and how to call it.

``describe`` builds one plain dict (the ``loopml describe --json`` object): the input columns
with their type, categories and the range seen in training, the outputs and classes, the
traffic of the endpoint, and ready-to-paste ``curl`` requests for each protocol the server
speaks (loopml JSON, MLflow ``/invocations``, Open Inference Protocol V2), built on a real
row of the training data. The CLI prints it; the dashboard can show the same dict.
"""

from __future__ import annotations

import json
import math
import shlex
from typing import Any

from loopml.store.endpoints import serving_versions
from loopml.store.rows import EndpointRow, VersionRow

PROTOCOLS = ("loopml", "mlflow", "v2")


def _py(v: Any) -> Any:
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def training_ranges(cfg: Any, version: VersionRow) -> dict[str, tuple[float, float]]:
    """Each numeric input's [min, max] in the training data (from the stored profile)."""
    from loopml.artifacts.store import ArtifactStore
    from loopml.errors import LoopmlError
    from loopml.stats import DatasetProfile

    digest = version.get("reference_profile")
    if not digest:
        return {}
    try:
        import zlib

        doc = json.loads(zlib.decompress(ArtifactStore(cfg.artifacts_root).get_bytes(digest)))
        prof = DatasetProfile.from_dict(doc["features"])
    except (LoopmlError, OSError, ValueError, KeyError, zlib.error):
        return {}  # an unreadable profile leaves the range unknown; the rest still describes
    out = {}
    for name, col in prof.columns.items():
        s = col.get()
        if s.get("min") is not None and s.get("max") is not None:
            out[name] = (float(s["min"]), float(s["max"]))
    return out


def _example_row(cfg: Any, columns: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """A real row of the training data (the first without missing inputs), and its source.

    When the data cannot be read any more, a typical row stands in: the middle of each
    training range and the first category, said so in the source."""
    names = [c["name"] for c in columns]
    try:
        from loopml.errors import LoopmlError

        sub = _head(cfg, names).dropna()
        if not len(sub):  # no complete row near the top: look through the whole data
            from loopml.data.sources import load_frame

            sub = load_frame(cfg.data.train, cfg.root, what="data.train")[names].dropna()
        if len(sub):
            row = {k: _py(v) for k, v in sub.iloc[0].items()}
            for c in columns:  # send categories as the type the signature holds
                cats = c["categories"] or [None]
                if isinstance(cats[0], str) and row[c["name"]] is not None:
                    row[c["name"]] = str(row[c["name"]])
            return row, f"the first complete row of {cfg.data.train}"
    except (LoopmlError, KeyError, OSError, ValueError):
        pass
    row = {}
    for c in columns:
        if c["type"] == "category":
            row[c["name"]] = (c["categories"] or [""])[0]
        elif c["type"] == "bool":
            row[c["name"]] = False
        else:
            lo, hi = c["range"] or (0.0, 0.0)
            mid = (lo + hi) / 2
            row[c["name"]] = round(mid) if c["dtype"].startswith(("int", "uint")) else mid
    return row, "a typical row (the training data could not be read)"


def _head(cfg: Any, names: list[str], n: int = 1000) -> Any:
    """The first ``n`` rows of the training data's ``names`` columns, read without loading a
    large file whole (one Parquet batch, or the first CSV lines)."""
    import pandas as pd

    from loopml.data.sources import load_frame

    path = cfg.path(cfg.data.train)
    suffix = path.suffix.lower()
    if path.is_file() and suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        batch = next(pq.ParquetFile(path).iter_batches(batch_size=n, columns=names), None)
        return batch.to_pandas() if batch is not None else pd.DataFrame(columns=names)
    if path.is_file() and suffix in (".csv", ".tsv"):
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", usecols=names, nrows=n)
    return load_frame(cfg.data.train, cfg.root, what="data.train")[names].head(n)


def _v2_type(c: dict[str, Any]) -> str:
    if c["type"] == "category":
        return "BYTES"
    if c["type"] == "bool":
        return "BOOL"
    return "INT64" if c["dtype"].startswith(("int", "uint")) else "FP64"


def _curl(url: str, body: dict[str, Any]) -> str:
    data = json.dumps(body, separators=(", ", ": "))
    return (
        f"curl -s {url} \\\n"
        '  -H "Authorization: Bearer $LOOPML_KEY" -H "Content-Type: application/json" \\\n'
        f"  -d {shlex.quote(data)}"
    )


def examples(
    base: str, endpoint: str, columns: list[dict[str, Any]], row: dict[str, Any]
) -> list[dict[str, Any]]:
    """One ready-to-paste request per protocol for ``row``."""
    names = [c["name"] for c in columns]
    v2_inputs = []
    for c in columns:
        v = row[c["name"]]
        v2_inputs.append({"name": c["name"], "datatype": _v2_type(c), "shape": [1], "data": [v]})
    specs: list[tuple[str, str, dict[str, Any]]] = [
        ("loopml", f"{base}/v1/endpoints/{endpoint}/predict", {"rows": [row]}),
        (
            "mlflow",
            f"{base}/endpoints/{endpoint}/invocations",
            {"dataframe_split": {"columns": names, "data": [[row[n] for n in names]]}},
        ),
        ("v2", f"{base}/v2/models/{endpoint}/infer", {"inputs": v2_inputs}),
    ]
    return [
        {"protocol": p, "url": url, "body": body, "curl": _curl(url, body)}
        for p, url, body in specs
    ]


def _traffic(ep: EndpointRow) -> list[dict[str, Any]]:
    canary = ep["canary_weight"] if ep["canary_id"] else 0.0
    rows = []
    if ep["champion_id"] is not None:
        rows.append({"version": ep["champion_id"], "role": "champion", "share": 100.0 - canary})
    if ep["canary_id"]:
        rows.append({"version": ep["canary_id"], "role": "canary", "share": canary})
    for s in ep["shadows"]:
        rows.append(
            {"version": s["version_id"], "role": "shadow", "share": 0.0, "mirrored": s["fraction"]}
        )
    return rows


def resolve(store: Any, target: str) -> tuple[VersionRow, EndpointRow | None]:
    """``target`` as (version, endpoint or None): digits name a version id, else an endpoint."""
    from loopml.errors import NotFoundError

    if target.isdigit():
        version = store.versions.get(int(target))
        serving = [e for e in store.endpoints.list() if version["id"] in serving_versions(e)]
        return version, (serving[0] if serving else None)
    ep = store.endpoints.get(target)
    if ep["champion_id"] is None:
        raise NotFoundError(
            f"Endpoint {target!r} has no champion to describe. Deploy one with "
            f"'loopml deploy {target} VERSION', or describe a version: 'loopml describe VERSION'.",
            field="endpoint",
        )
    return store.versions.get(ep["champion_id"]), ep


def describe(cfg: Any, store: Any, target: str, *, base: str | None = None) -> dict[str, Any]:
    """Everything a caller needs to send rows to an endpoint (or a version's endpoint)."""
    version, ep = resolve(store, target)
    sig = version.get("signature") or {"columns": []}
    ranges = training_ranges(cfg, version)
    columns = [
        {
            "name": c["name"],
            "type": c["kind"],
            "dtype": c["dtype"],
            "nullable": bool(c.get("nullable")),
            "categories": c.get("categories"),
            "range": list(ranges[c["name"]]) if c["name"] in ranges else None,
        }
        for c in sig["columns"]
    ]
    task = sig.get("task", "classification")
    classes = sig.get("classes")
    if task == "regression":
        outputs = [{"name": "prediction", "type": "number", "of": sig.get("target")}]
    else:
        outputs = [
            {"name": "prediction", "type": "class", "of": sig.get("target"), "classes": classes},
            {"name": "probabilities", "type": "number per class", "classes": classes},
        ]
    endpoint = ep["name"] if ep else (cfg.deploy.endpoint if cfg.deploy else version["model"])
    base = (base or f"http://{cfg.serve.host}:{cfg.serve.port}").rstrip("/")
    row, source = _example_row(cfg, columns)
    return {
        "endpoint": endpoint,
        "serving": ep is not None,
        "version": version["id"],
        "model": version["model"],
        "number": version["number"],
        "status": version["status"],
        "task": task,
        "target": sig.get("target"),
        "inputs": columns,
        "outputs": outputs,
        "traffic": _traffic(ep) if ep else [],
        "example_row": row,
        "example_source": source,
        "examples": examples(base, endpoint, columns, row),
    }
