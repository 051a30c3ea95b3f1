"""Arrow tables from prediction-log and label-log records (one record per request), and the
records' JSON encoding (:func:`dumps`).

Built with a Python loop over records (requests), never over rows: each record's columns
are extended in C. Numbers become float64, booleans bool, anything else strings, so parts
written at different times share one schema; where they still differ, readers cast the
column to text. Labels and predictions are compared as :func:`canonical` text.

A segment is decoded a chunk of frames at a time (:mod:`loopml.logs.segmentfile`), and one
chunk's table can differ from the next: a column of nulls only (typed bool), a feature met
only later, numbers in one chunk and text in another. :func:`unified_schema` gives the schema
one build over every record would have given, :func:`conform` brings each chunk's table to
it; a column that is text only because of another chunk is built again from its records as
text (the builders' ``text``), since Arrow's cast writes ``1.0`` as ``1`` and ``True`` as
``true`` where a whole build writes Python's ``str``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from loopml.jsonsafe import jsonable
from loopml.logs.layout import LABELS, PREDICTIONS, REFUSED


def dumps(obj: Any) -> bytes:
    """A record as JSON bytes (NumPy arrays and scalars included), as frames hold it."""
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY, default=_default)


def _default(obj: Any) -> Any:
    # An array orjson does not take itself (object dtype: a string column) as a list: orjson
    # writes NaN as null and hands back here what it cannot take, the output of ``jsonable``
    # at a third of the cost (a log record's four string columns: 8.3 -> 2.6 µs a record).
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return jsonable(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


RESERVED = (
    "_request_id",
    "_call",
    "_endpoint",
    "_version",
    "_role",
    "_ts",
    "_event_time",
    "_entity_key",
    "_latency_ms",
    "_prediction",
    "_score",
    "_proba",
    "_flags",
)


def _column(values: list[Any], text: bool = False) -> pa.Array:
    """Numbers as float64, booleans as bool, anything else (or every value, with ``text``)
    as strings."""
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {bool} and not text:
        return pa.array(values, pa.bool_())
    if kinds <= {int, float} and not text:
        return pa.array(values, pa.float64())
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def _score(proba: Any, n: int) -> list[float | None]:
    if proba is None:
        return [None] * n
    arr = np.asarray(proba, dtype=np.float64).reshape(n, -1)
    return (arr[:, 1] if arr.shape[1] == 2 else arr.max(axis=1)).tolist()


def prediction_table(
    records: list[dict[str, Any]], text: Collection[str] = (), features: bool = True
) -> pa.Table:
    """One row per prediction; a Python loop over records (requests, or a shadow's batch of
    them), not rows. The columns
    named in ``text`` (``_prediction``, features) are strings whatever their values. Without
    ``features`` only the reserved columns (what the controller and the monitor's counts read
    of live segments: about half the memory and half the build)."""
    ids: list[str] = []
    cols: dict[str, list[Any]] = {k: [] for k in RESERVED if k != "_request_id"}
    # ``_call``: the first request id of the call, the same for every row of one HTTP request
    # (and for its shadow and paired answers): the cluster a rollout's test counts as one unit
    feats: dict[str, list[Any]] = {}
    total = 0
    for rec in records:
        rids = rec["r"]
        n = len(rids)
        ids.extend(rids)
        for key, short in (("_endpoint", "e"), ("_version", "v"), ("_role", "o"), ("_ts", "t")):
            cols[key].extend(repeat(rec[short], n))
        # a record of one request, or of several ("n": each one's rows; "k", "l" and "f"
        # one entry per request: a shadow's batch, PredictionLog.encode_group)
        counts = rec.get("n")
        parts = (
            zip(counts, rec["k"], rec["l"], rec["f"], strict=True)
            if counts is not None
            else ((n, rec["k"], rec["l"], rec["f"]),)
        )
        at = 0
        for m, key, latency, f in parts:
            cols["_call"].extend(repeat(rids[at] if m else None, m))
            cols["_entity_key"].extend(repeat(key, m))
            cols["_latency_ms"].extend(repeat(latency, m))
            at += m
            for name, values in f.items() if features else ():
                col = feats.get(name)
                if col is None:
                    col = feats[name] = [None] * total
                col.extend(values)
            total += m
            for col in feats.values():
                if len(col) < total:
                    col.extend(repeat(None, total - len(col)))
        cols["_prediction"].extend(rec["p"])
        q = rec["q"]
        cols["_proba"].extend(q if q is not None else repeat(None, n))
        cols["_score"].extend(_score(q, n))
        cols["_flags"].extend(rec["g"] if rec["g"] is not None else repeat(None, n))
        # ``_event_time``: when the row's event happened (data.time or X-Event-Time), else
        # the request time; records written before it existed have no "w"
        w = rec.get("w")
        if w is None:
            cols["_event_time"].extend(repeat(rec["t"], n))
        else:
            cols["_event_time"].extend(rec["t"] if x is None else x for x in w)
    arrays = {
        "_request_id": pa.array(ids, pa.string()),
        "_call": pa.array(cols["_call"], pa.string()),
        "_endpoint": pa.array(cols["_endpoint"], pa.string()),
        "_version": pa.array(cols["_version"], pa.int64()),
        "_role": pa.array(cols["_role"], pa.string()),
        "_ts": pa.array(cols["_ts"], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "_event_time": pa.array(cols["_event_time"], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "_entity_key": pa.array(cols["_entity_key"], pa.string()),
        "_latency_ms": pa.array(cols["_latency_ms"], pa.float64()),
        "_prediction": _column(cols["_prediction"], "_prediction" in text),
        "_score": pa.array(cols["_score"], pa.float64()),
        "_proba": pa.array(cols["_proba"], pa.list_(pa.float64())),
        "_flags": pa.array(cols["_flags"], pa.string()),
    }
    for name, values in feats.items():
        out = name if name not in arrays else f"feature{name}"
        arrays[out] = _column(values, out in text)
    return pa.table(arrays)


def refused_table(records: list[dict[str, Any]], text: Collection[str] = ()) -> pa.Table:
    """Refusal counts (``loopml.serve.http.refusals``): one row per record. Every column has
    a fixed type (``text`` is there for the builders' common signature)."""

    def col(key: str) -> list[Any]:
        return [rec.get(key) for rec in records]

    return pa.table(
        {
            "_ts": pa.array(col("t"), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "_endpoint": pa.array(col("e"), pa.string()),
            "_version": pa.array(col("v"), pa.int64()),
            "_role": pa.array(col("o"), pa.string()),
            "_reason": pa.array(col("reason"), pa.string()),
            "_column": pa.array(col("c"), pa.string()),
            "_status": pa.array(col("s"), pa.int64()),
            "_requests": pa.array(col("n"), pa.int64()),
            "_rows": pa.array(col("rows"), pa.int64()),
        }
    )


def label_table(records: list[dict[str, Any]], text: Collection[str] = ()) -> pa.Table:
    """One row per label; ``_label`` is strings whatever its values if ``text`` names it."""
    ids: list[str] = []
    labels: list[Any] = []
    ts: list[int] = []
    endpoints: list[str] = []
    for rec in records:
        n = len(rec["r"])
        ids.extend(rec["r"])
        labels.extend(rec["y"])
        ts.extend(repeat(rec["t"], n))
        endpoints.extend(repeat(rec["e"], n))
    return pa.table(
        {
            "_request_id": pa.array(ids, pa.string()),
            "_endpoint": pa.array(endpoints, pa.string()),
            "_label": _column(labels, "_label" in text),
            "_ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        }
    )


def canonical(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Class labels as strings: integral floats lose their ``.0``, booleans are True/False."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_floating(t):
        finite = pc.fill_null(pc.is_finite(arr), False)
        integral = pc.and_(finite, pc.equal(arr, pc.floor(arr)))
        if pc.all(pc.or_(integral, pc.is_null(arr))).as_py():
            return pc.cast(pc.cast(arr, pa.int64()), pa.string())
        return pc.cast(arr, pa.string())
    if pa.types.is_boolean(t):
        return pc.if_else(arr, pa.scalar("True"), pa.scalar("False"))
    if pa.types.is_string(t):
        return arr
    return pc.cast(arr, pa.string())


def concat_tables(tables: list[pa.Table]) -> pa.Table:
    """Concatenate parts; a column whose type differs between parts (numbers in one, text
    in another) is read as text."""
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        types: dict[str, set[pa.DataType]] = {}
        for t in tables:
            for f in t.schema:
                types.setdefault(f.name, set()).add(f.type)
        clash = {n for n, ts in types.items() if len({t for t in ts if t != pa.null()}) > 1}
        fixed = []
        for t in tables:
            for name in clash & set(t.column_names):
                i = t.column_names.index(name)
                t = t.set_column(i, name, t.column(name).cast(pa.string()))
            fixed.append(t)
        return pa.concat_tables(fixed, promote_options="permissive")


def null_columns(table: pa.Table) -> frozenset[str]:
    """The columns holding nulls only (every column of an empty table): their type says
    nothing about the records (``_column`` calls them bool)."""
    n = table.num_rows
    return frozenset(name for name in table.column_names if table.column(name).null_count == n)


def unified_schema(
    chunks: Sequence[tuple[pa.Schema, Collection[str]]],
) -> tuple[pa.Schema, frozenset[str]]:
    """The schema one build over the records of every chunk would give, from each chunk's
    schema and :func:`null_columns`; and the columns that are text there but numbers or
    booleans in some chunk (to build again with ``text``, see the module docstring).

    Columns keep the order in which the chunks first hold them; a column of nulls only in
    every chunk keeps the type of the first.
    """
    first: dict[str, pa.DataType] = {}
    kinds: dict[str, set[pa.DataType]] = {}
    for schema, nulls in chunks:
        for field in schema:
            first.setdefault(field.name, field.type)
            seen = kinds.setdefault(field.name, set())
            if field.name not in nulls:
                seen.add(field.type)
    fields, text = [], set()
    for name, t in first.items():
        seen = kinds[name]
        if len(seen) > 1:  # only _column's columns vary, and they are text if kinds mix
            fields.append(pa.field(name, pa.string()))
            text.add(name)
        else:
            fields.append(pa.field(name, next(iter(seen), t)))
    return pa.schema(fields), frozenset(text)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the columns of ``schema`` in its order: a column it lacks, or holds as
    nulls of another type, becomes nulls of the schema's type; any other column of another
    type is cast (numbers read as text, as readers do across parts)."""
    n = table.num_rows
    columns = []
    for field in schema:
        if table.schema.get_field_index(field.name) < 0:
            columns.append(pa.nulls(n, field.type))
            continue
        col = table.column(field.name)
        if col.type != field.type:
            col = pa.nulls(n, field.type) if col.null_count == n else col.cast(field.type)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


def merge_chunks(tables: Sequence[pa.Table]) -> pa.Table:
    """Tables built from consecutive chunks of one segment, as one table of the
    :func:`unified_schema` (a column of numbers in some chunks and text in others cast to
    text)."""
    schema, _ = unified_schema([(t.schema, null_columns(t)) for t in tables])
    return pa.concat_tables([conform(t, schema) for t in tables])


# the table builder of each log kind (the folder under the log root, loopml.logs.layout)
BUILDERS = {PREDICTIONS: prediction_table, LABELS: label_table, REFUSED: refused_table}


def reserved_table(records: list[dict[str, Any]], text: Collection[str] = ()) -> pa.Table:
    """:func:`prediction_table` without the features (``features=False``)."""
    return prediction_table(records, text, features=False)


def newest_labels(tables: list[pa.Table]) -> pa.Table:
    """``_request_id, _label`` of label tables (``_request_id, _label, _ts``): the newest
    label of each request id."""
    if not tables:
        return pa.table(
            {"_request_id": pa.array([], pa.string()), "_label": pa.array([], pa.float64())}
        )
    try:
        t = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        # parts whose labels differ in type (numbers in one, text or booleans in another,
        # as clients sent them): compare them as the canonical text of each label
        t = pa.concat_tables(
            [t.set_column(1, "_label", canonical(t.column("_label"))) for t in tables]
        )
    if t.num_rows == 0:
        return t.select(["_request_id", "_label"])
    # newest label wins: sort by id then time, keep the last row of each id
    t = t.sort_by([("_request_id", "ascending"), ("_ts", "ascending")])
    ids = t.column("_request_id").combine_chunks()
    last = pa.concat_arrays(
        [pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1)), pa.array([True])]
    )
    return t.filter(last).select(["_request_id", "_label"])
