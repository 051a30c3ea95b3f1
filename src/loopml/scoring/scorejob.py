"""A batch scoring job: resolve the model, plan the chunks, score what is not done, finish.

The output is a folder of parts (``part-000000.parquet`` ...) with a manifest
(``_loopml_score.json``: version, endpoint, input, chunk size, the job's id and time). A name
ending in ``.parquet`` or ``.csv`` is one file instead: the parts are written to
``<name>.parts/`` and streamed into the file at the end; the manifest stays there, marked done,
so rerunning a finished job does nothing (and logs nothing twice). Rerunning the same command resumes:
chunks whose output part exists are skipped (see :mod:`loopml.scoring.scorer`); a manifest of a
different job is refused rather than mixed with.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.config import Config
from loopml.engines import Engine, get_engine
from loopml.engines.chunks import Chunk, csv_chunks, input_format, plan, put_part
from loopml.errors import ConflictError, NotFoundError, UsageError
from loopml.logs.layout import check_endpoint
from loopml.scoring.scorer import Job, Scorer, new_job_time, part_path
from loopml.serve.settings import Settings

MANIFEST = "_loopml_score.json"
CHUNK_ROWS = 262_144

Progress = Callable[[int, int | None], None]  # (rows done, total rows or None)


@dataclass
class ScoreSummary:
    version: int
    endpoint: str
    output: str
    rows: int
    chunks: int
    skipped_chunks: int
    seconds: float
    engine: str

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "rows_per_second": self.rows / self.seconds if self.seconds else None,
        }


def resolve(store: Any, target: str, endpoint: str | None, default: str | None) -> tuple[int, str]:
    """(version id, endpoint) of ``VERSION|ENDPOINT``: an endpoint scores with its champion."""
    if target.isdigit():
        version = int(target)
        store.versions.get(version)  # NotFoundError names it
        ep = endpoint or default
        if not ep:
            raise UsageError(
                f"Which endpoint do version {version}'s batch predictions belong to? Pass "
                "--endpoint NAME (they are logged and monitored under it).",
                field="endpoint",
            )
        return version, ep
    try:
        row = store.endpoints.get(target)
    except NotFoundError:
        raise NotFoundError(
            f"{target!r} is neither a version number nor a known endpoint. See 'loopml "
            "versions' and 'loopml history ENDPOINT'.",
            field="target",
        ) from None
    if row.get("champion_id") is None:
        raise ConflictError(
            f"Endpoint {target!r} has no champion to score with. Deploy one, or name a version.",
            field="target",
        )
    return int(row["champion_id"]), endpoint or target


def _layout(output: str) -> tuple[str, str | None, str]:
    """(parts folder, final single file or None, part format)."""
    name = output.rstrip("/")
    low = name.lower()
    if low.endswith(".parquet"):
        return name + ".parts", name, "parquet"
    if low.endswith(".csv"):
        return name + ".parts", name, "csv"
    return name, None, "parquet"


def _manifest(fs: Any, parts_dir: str, want: dict[str, Any]) -> dict[str, Any]:
    path = f"{parts_dir}/{MANIFEST}"
    if fs.exists(path):
        have = json.loads(fs.cat_file(path))
        keys = ("version", "endpoint", "input", "chunk_rows")
        if any(have.get(k) != want[k] for k in keys):
            raise ConflictError(
                f"{parts_dir!r} holds the parts of another scoring job ("
                + ", ".join(f"{k} {have.get(k)!r}" for k in keys)
                + "). Choose another --output, or delete it to start over.",
                field="output",
            )
        return have
    doc = {**want, "job": uuid.uuid4().hex[:12], "ts_us": new_job_time()}
    fs.makedirs(parts_dir, exist_ok=True)
    fs.pipe_file(path, json.dumps(doc, indent=2).encode())
    return doc


def score(
    cfg: Config,
    store: Any,
    target: str,
    input_url: str,
    output: str,
    *,
    endpoint: str | None = None,
    engine: Engine | str | None = None,
    cpus: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: Progress | None = None,
) -> ScoreSummary:
    """Score ``input_url`` with ``target`` (a version number or an endpoint's champion) into
    ``output``, logging every row with role ``batch``; see the module docstring."""
    t0 = time.perf_counter()
    default = cfg.deploy.endpoint if cfg.deploy else None
    version, ep = resolve(store, target, endpoint, default)
    check_endpoint(ep)
    chunks, total, _ = plan(input_url, chunk_rows)
    parts_dir, final, fmt = _layout(output)
    fs, parts_path = fsspec.core.url_to_fs(parts_dir)
    doc = _manifest(
        fs,
        parts_path,
        {"version": version, "endpoint": ep, "input": input_url, "chunk_rows": chunk_rows},
    )
    if (
        final is not None
        and doc.get("done")
        and fsspec.core.url_to_fs(final)[0].exists(fsspec.core.url_to_fs(final)[1])
    ):  # finished before: rerunning must not log its rows twice
        name = engine if isinstance(engine, str) else getattr(engine, "name", "local")
        return ScoreSummary(
            version,
            ep,
            final,
            doc["rows"],
            doc["chunks"],
            doc["chunks"],
            time.perf_counter() - t0,
            name or "local",
        )
    ext = "csv" if fmt == "csv" else "parquet"
    done = {p.rsplit("/", 1)[-1] for p in fs.glob(f"{parts_path}/part-*.{ext}")}
    job = Job(
        Settings.from_config(cfg),
        version,
        ep,
        doc["job"],
        int(doc["ts_us"]),
        parts_dir,
        fmt,
    )
    stream: Iterable[Chunk] = (
        chunks if input_format(input_url) == "parquet" else csv_chunks(input_url, chunk_rows)
    )
    counts = {"rows": 0, "chunks": 0, "skipped": 0}

    def todo() -> Iterator[Chunk]:
        for c in stream:
            if part_path("", c.index, ext).lstrip("/") in done:
                counts["skipped"] += 1
                counts["rows"] += c.rows
                if progress:
                    progress(counts["rows"], total)
                continue
            yield c

    eng = get_engine(engine, cpus=cpus) if engine is None or isinstance(engine, str) else engine
    try:
        for n in eng.map_actors(Scorer, (job,), todo()):
            counts["rows"] += n
            counts["chunks"] += 1
            if progress:
                progress(counts["rows"], total)
    finally:
        if eng is not engine:
            eng.close()
    n_parts = counts["chunks"] + counts["skipped"]
    if final is not None:
        _concat(fs, parts_path, n_parts, final, fmt)
        doc.update(done=True, rows=counts["rows"], chunks=n_parts)
        fs.pipe_file(f"{parts_path}/{MANIFEST}", json.dumps(doc, indent=2).encode())
    return ScoreSummary(
        version,
        ep,
        final or parts_dir,
        counts["rows"],
        n_parts,
        counts["skipped"],
        time.perf_counter() - t0,
        eng.name,
    )


def _concat(fs: Any, parts_path: str, n_parts: int, final: str, fmt: str) -> None:
    """Stream the parts, in order, into one file (one part in memory at a time), then delete
    them (the manifest stays, marking the job done). Written to a temporary name first, so the
    file appears whole."""
    out_fs, out_path = fsspec.core.url_to_fs(final)
    tmp = f"{out_path}.tmp"
    writer: Any = None
    with out_fs.open(tmp, "wb") as sink:
        for i in range(n_parts):
            with fs.open(part_path(parts_path, i, fmt), "rb") as fh:
                if fmt == "csv":  # the bytes as they are, one header line
                    data = fh.read()
                    sink.write(data if i == 0 else data.split(b"\n", 1)[1])
                    continue
                table = pq.read_table(fh)
            if writer is None:
                writer = pq.ParquetWriter(sink, table.schema)
            writer.write_table(table.cast(writer.schema))
        if writer is not None:
            writer.close()
    out_fs.mv(tmp, out_path)
    for i in range(n_parts):
        fs.rm_file(part_path(parts_path, i, fmt))
    if n_parts == 0:  # no rows at all: still leave a readable file behind
        put_part(out_fs, out_path, pa.table({}), fmt)
