"""The one reader of the logs' Parquet parts, local or remote (fsspec): partition discovery,
footer statistics, and batch reads (the monitor's windows, the controller's and the
dashboard's tables through :mod:`loopml.logs.logreader`, batch scoring's resumption).

The layout is :mod:`loopml.logs.layout`. Names starting with ``.`` or ``_`` are skipped
(temporary files, write-ahead folders), and so are parts of a segment still in the spool
without a ``.done`` marker: their rows are read from the segment (``LiveLog``). A window's
rows are streamed as record batches (``pyarrow.dataset``) with only the columns asked for
and the time range pushed into the scan.

Windows are cut by window time (event time where the log has it, see ``parts.py``); each
part's range of it comes from its footer statistics (``part``), and the not yet compacted
segments' rows (``LiveLog``) join as in-memory parts. Rows of role ``paired`` (the
champion's off-path answer on canary-routed rows, which duplicates canary traffic) are never
read by the monitor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from loopml.errors import StorageError
from loopml.logs import footers
from loopml.logs.layout import (
    PREDICTIONS,
    LogLocation,
    as_location,
    is_part,
    kind_url,
    live_segments,
    segment_of,
)
from loopml.logs.logtables import newest_labels
from loopml.logs.partcache import PartCache, stamp
from loopml.logs.parts import (
    PAIRED,
    Part,
    conform,
    table_part,
    window_time,
)
from loopml.logs.upload import is_local

BATCH_ROWS = 64 * 1024


def ts_scalar(t: float) -> pa.Scalar:
    return pa.scalar(round(t * 1_000_000), pa.timestamp("us", tz="UTC"))


class LogFiles:
    """Partition discovery and batch reading under a log root (local or fsspec URL)."""

    def __init__(self, where: LogLocation | str | Path) -> None:
        self.where = as_location(where)
        self.fs, self.base = fsspec.core.url_to_fs(self.where.root)
        self.base = self.base.rstrip("/")
        self.arrow_fs = (
            pafs.LocalFileSystem()
            if is_local(self.fs)
            else pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))
        )
        self._live: dict[str, set[str]] = {}
        self._label_parts: dict[str, pa.Table] = {}
        self._ranges: dict[tuple[str, int, str], tuple[object, object] | None] = {}
        self._listing: dict[str, list[dict]] = {}
        self._parts: dict[tuple[str, int], Part] = {}
        self._versions: dict[str, tuple[int, str]] = {}  # path -> (size, stamp), as listed
        self.corrupt: dict[str, str] = {}  # path -> why it cannot be read (skipped, reported)

    def damaged(self, path: str) -> str | None:
        """Why a Parquet part cannot be read whole (footer and every page decoded), or None.
        Called only after a scan failed, to find the part to skip; remembered for the pass."""
        if path not in self.corrupt:
            try:
                with self.arrow_fs.open_input_file(path) as f:
                    for _ in pq.ParquetFile(f).iter_batches(batch_size=BATCH_ROWS):
                        pass
            except (OSError, ValueError, pa.ArrowException) as exc:
                self.corrupt[path] = f"{type(exc).__name__}: {str(exc)[:200]}"
            else:
                return None
        return self.corrupt[path]

    def _stamp(self, path: str, size: int) -> str | None:
        """The part's stamp from this reader's listing, if it was listed at this size: what
        makes a footer read by an earlier reader safe to reuse (:data:`FOOTERS`)."""
        got = self._versions.get(path)
        return got[1] if got is not None and got[0] == size else None

    def value_range(self, path: str, size: int, column: str) -> tuple[object, object] | None:
        """(min, max) of ``column`` in a part, from its Parquet footer statistics (cached per
        pass, and across passes for a listed part: :data:`~loopml.logs.footers.FOOTERS`):
        lets a short window skip the parts of its hour that cannot hold its rows."""
        key = (path, size, column)
        if key not in self._ranges:
            self._ranges[key] = footers.value_range(
                self.arrow_fs, path, size, self._stamp(path, size), column
            )
        return self._ranges[key]

    def overlapping(
        self,
        parts: Sequence[tuple[str, int]],
        column: str,
        lo: object,
        hi: object,
        only_if: Callable[[object], bool] | None = None,
    ) -> list[tuple[str, int]]:
        """The parts whose ``column`` range may meet [lo, hi). Parts without statistics, or
        whose range fails ``only_if`` (values this rule cannot order), are kept."""
        out = []
        for path, size in parts:
            rng = self.value_range(path, size, column)
            if (
                rng is None
                or (only_if is not None and not (only_if(rng[0]) and only_if(rng[1])))
                or (rng[1] >= lo and rng[0] < hi)  # type: ignore[operator]
            ):
                out.append((path, size))
        return out

    def _ls(self, path: str) -> list[str]:
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in self._list(path, detail=False)]

    def _list(self, path: str, *, detail: bool) -> list[Any]:
        """``fs.ls``: a missing folder is empty; a network error a clear :class:`StorageError`."""
        try:
            # refresh: s3fs would answer from its listing cache, which never expires, and a
            # long-running reader (the server's monitor and controller) never see new parts
            return list(self.fs.ls(path, detail=detail, refresh=True))
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise self._unreachable("list", path, exc) from exc

    def _unreachable(self, doing: str, path: str, exc: Exception) -> Exception:
        if is_local(self.fs):
            return exc
        return StorageError(
            f"Could not {doing} {self.fs.unstrip_protocol(path)!r} of the prediction log "
            f"({type(exc).__name__}: {str(exc)[:200]}). Check the connection and credentials "
            "(AWS_ENDPOINT_URL, AWS_PROFILE or the AWS_* keys) and log.root in loopml.yaml.",
            field="log",
        )

    def read_table(self, path: str, columns: Sequence[str] | None = None) -> pa.Table:
        """One part, whole (or the given columns); a network error is a :class:`StorageError`."""
        try:
            return pq.read_table(path, columns=columns, filesystem=self.arrow_fs)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise self._unreachable("read", path, exc) from exc

    def endpoints(self, kind: str = PREDICTIONS) -> list[str]:
        """Endpoints that have partitions of ``kind`` (the prediction log by default)."""
        return sorted(
            n[len("endpoint=") :]
            for n in self._ls(kind_url(self.base, kind))
            if n.startswith("endpoint=")
        )

    def hours(self, kind: str, endpoint: str) -> list[str]:
        """Hour partitions (YYYYMMDDHH) present for ``kind`` ("predlog" or "labels")."""
        return sorted(
            n[5:]
            for n in self._ls(f"{kind_url(self.base, kind)}/endpoint={endpoint}")
            if n.startswith("hour=")
        )

    def live_segments(self, kind: str) -> set[str]:
        """The spool's segments not compacted yet (their parts, if any, are not read)."""
        if kind not in self._live:
            self._live[kind] = {p.stem for p in live_segments(self.where.spool, kind)}
        return self._live[kind]

    def parts(self, kind: str, endpoint: str, hours: Iterable[str]) -> list[tuple[str, int]]:
        """(path, size) of the finished Parquet parts in the given hours."""
        live = self.live_segments(kind)
        out: list[tuple[str, int]] = []
        for h in sorted(set(hours)):
            folder = f"{kind_url(self.base, kind)}/endpoint={endpoint}/hour={h}"
            if folder not in self._listing:
                self._listing[folder] = self._list(folder, detail=True)
            infos = self._listing[folder]
            for info in infos:
                name = info["name"].rstrip("/").rsplit("/", 1)[-1]
                if not is_part(name) or segment_of(name) in live:
                    continue
                size = int(info.get("size") or 0)
                self._versions[info["name"]] = (size, stamp(info))
                out.append((info["name"], size))
        return out

    def cached_table(
        self, path: str, cache: PartCache | None, columns: Sequence[str] | None = None
    ) -> pa.Table:
        """A part listed by ``parts``, whole or only those of ``columns`` it has: from
        ``cache`` when it holds this version of it (same path, size and stamp, same columns),
        else read (and kept there)."""
        if cache is None:
            return self._read_columns(path, columns)
        size, mark = self._versions[path]
        key = (path, size, mark if columns is None else f"{mark}|{','.join(columns)}")
        table = cache.get(key)
        if table is None:
            table = self._read_columns(path, columns)
            cache.put(key, table)
        return table

    def _read_columns(self, path: str, columns: Sequence[str] | None) -> pa.Table:
        """A part whole, or only those of ``columns`` it has (parts differ in features),
        its footer read once for both."""
        if columns is None:
            return self.read_table(path)
        try:
            part = pq.ParquetFile(path, filesystem=self.arrow_fs)
            have = set(part.schema_arrow.names)
            return part.read(columns=[c for c in columns if c in have])
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise self._unreachable("read", path, exc) from exc

    @staticmethod
    def fingerprint(parts: Sequence[tuple[str, int]]) -> str:
        """A digest of the part names and sizes (changes when a part is added or rewritten)."""
        h = hashlib.sha256()
        for path, size in sorted(parts):
            h.update(f"{path.rsplit('/', 3)[-2:]}:{size}\n".encode())
        return h.hexdigest()

    def part(self, path: str, size: int, hour: str) -> Part:
        """A Parquet part with its ranges of window time and log time (cached per pass, and
        across passes for a listed part: :func:`loopml.logs.footers.part`)."""
        key = (path, size)
        if key not in self._parts:
            self._parts[key] = footers.part(
                self.arrow_fs, path, size, self._stamp(path, size), hour
            )
        return self._parts[key]

    def index(
        self, kind: str, endpoint: str, live: Sequence[tuple[str, pa.Table]] = ()
    ) -> list[Part]:
        """Every part of an endpoint's log with its time ranges, plus the not yet compacted
        segments' rows (``live``: (segment token, rows) pairs, see ``LiveLog``)."""
        out: list[Part] = []
        skip = {token.split(":", 1)[0] for token, _ in live}
        for h in self.hours(kind, endpoint):
            for path, size in self.parts(kind, endpoint, [h]):
                if segment_of(path) not in skip:
                    out.append(self.part(path, size, h))
        for token, table in live:
            if table.num_rows:
                out.append(table_part(token, table))
        return out

    def schema(self, parts: Sequence[Part | str]) -> pa.Schema:
        """The union of the parts' schemas (a feature missing from one part reads as nulls)."""
        schemas = [
            p.table.schema
            if isinstance(p, Part) and p.table is not None
            else pq.read_schema(p.path if isinstance(p, Part) else p, filesystem=self.arrow_fs)
            for p in parts
        ]
        return pa.unify_schemas(schemas, promote_options="permissive")

    def window_fingerprint(self, parts: Sequence[Part], start: float, end: float) -> str:
        """``fingerprint`` of a window's sources: a live segment counts by the rows it holds
        for this window, so appends outside the window do not make it look changed."""
        keyed = []
        for p in parts:
            if p.table is None:
                keyed.append((p.path, p.size))
                continue
            when = window_time(p.table.schema)
            flt = (when >= ts_scalar(start)) & (when < ts_scalar(end))
            if "_role" in p.table.schema.names:
                flt = flt & (ds.field("_role") != PAIRED)
            segment = p.path.split(":")[1]
            keyed.append((f"live:{segment}", ds.dataset(p.table).count_rows(filter=flt)))
        return self.fingerprint(keyed)

    def batches(
        self,
        parts: Sequence[Part],
        start: float,
        end: float,
        columns: Sequence[str] | None = None,
        schema: pa.Schema | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Rows whose window time lies in [start, end), except role ``paired``, as record
        batches of the given columns."""
        if not parts:
            return
        schema = schema or self.schema(parts)
        when = window_time(schema)
        flt = (when >= ts_scalar(start)) & (when < ts_scalar(end))
        if "_role" in schema.names:
            flt = flt & (ds.field("_role") != PAIRED)
        cols = None if columns is None else [c for c in columns if c in schema.names]
        files = [p.path for p in parts if p.table is None]
        sources: list[ds.Dataset] = []
        if files:
            sources.append(
                ds.dataset(files, schema=schema, format="parquet", filesystem=self.arrow_fs)
            )
        sources += [ds.dataset(conform(p.table, schema)) for p in parts if p.table is not None]
        for dataset in sources:
            # little readahead: memory stays bounded by a few batches, not by the window
            for batch in dataset.to_batches(
                columns=cols,
                filter=flt,
                batch_size=BATCH_ROWS,
                batch_readahead=2,
                fragment_readahead=1,
            ):
                if batch.num_rows:
                    yield batch

    def labels(self, paths: Sequence[str], live: Sequence[pa.Table] = ()) -> pa.Table:
        """``_request_id, _label`` from label parts (and ``live`` segments' label rows): the
        newest label of each request id.

        Each part is read once per ``LogFiles`` (one monitoring pass) and kept for the windows
        that share it.
        """
        tables = [t.select(["_request_id", "_label", "_ts"]) for t in live if t.num_rows]
        for p in sorted(paths):
            t = self._label_parts.get(p)
            if t is None:
                t = pq.read_table(
                    p, columns=["_request_id", "_label", "_ts"], filesystem=self.arrow_fs
                )
                self._label_parts[p] = t
            tables.append(t)
        return newest_labels(tables)
