"""Reading one endpoint's log a little at a time: each read returns only the rows that no
earlier read of the same :class:`LogTail` returned.

The controller judges a rollout every few seconds over every row since it started; reading
the whole period again each pass (``logreader.read_kind``) costs a time and a memory that
grow with the rollout's age. A tail remembers *which rows it has taken*, not a time: log
time (``_ts``) is stamped when a record is encoded, and records reach a segment in the order
their group commit wrote them, a mirrored shadow's answer seconds after its champion's; with
a remote root another replica's rows appear only when its segment is compacted, many minutes
late. A cut by time would need an overlap as long as the longest such delay, so a tail cuts
by source instead, where the log is append-only:

- a live segment (``.wal`` without ``.done``): its rows past the count taken last time (the
  log reader decodes each segment's frames once, in order: ``logreader.segment_tables``);
- a Parquet part: whole, once (a part is written whole and named after its segment and
  replica; a rerun of a compaction writes the same rows under the same name);
- a part compacted from a segment the tail had read live: only the rows past those taken
  from the segment. Compaction writes a segment's rows of one endpoint and hour to one part
  in frame order (``loopml.logs.compaction._chunk_tables``), so the rows taken live for that
  endpoint and hour are the part's first rows; the tail checks that the last of them has the
  request id it remembers, and raises :class:`TailLost` when it does not (the caller starts
  afresh).

Like ``read_kind``, a segment read live is never read from its parts in the same read, and
parts are listed after the segments. ``rows_read`` counts the rows taken (what a test or a
benchmark asks to see that a read after the first is small).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.logs.layout import HOUR_US, LogLocation, as_location, hour_name, hour_of, segment_of
from loopml.logs.logfiles import LogFiles
from loopml.logs.logreader import Where, _us, segment_tables
from loopml.logs.logtables import concat_tables


def bound_us(t: float) -> int:
    """A bound of a read in UTC microseconds, rounded as ``logreader.read_kind`` rounds the
    datetimes it is given (so that a tail and a whole read agree on a row at the bound)."""
    return _us(datetime.fromtimestamp(t, UTC), 0)


class TailLost(Exception):
    """A part does not begin with the rows the tail took from its segment: read afresh."""


class LogTail:
    """The rows of ``endpoint`` in the log ``kind`` (``"predlog"`` or ``"labels"``) with
    ``_ts >= start`` that earlier :meth:`read` calls did not return; ``columns`` as in
    ``logreader.read_kind`` (``_ts`` and ``_request_id`` always)."""

    def __init__(
        self, where: Where, kind: str, endpoint: str, start: float, columns: Sequence[str]
    ) -> None:
        self.where: LogLocation = as_location(where)
        self.kind, self.endpoint, self.start = kind, endpoint, start
        self.columns = list(dict.fromkeys(["_ts", "_request_id", *columns]))
        self.rows_read = 0  # rows taken, over every read
        self._parts: set[str] = set()  # parts taken whole (or their rest)
        self._live: dict[str, int] = {}  # live segment -> rows of its table taken
        # (segment, hour) -> (rows of this endpoint taken live, the last one's request id)
        self._taken: dict[tuple[str, str], tuple[int, str]] = {}

    def read(self) -> pa.Table:
        """The rows new since the last read, in no particular order."""
        tables: list[pa.Table] = []
        read_live: set[str] = set()
        for seg, table in segment_tables(self.where, self.kind, self.columns):
            read_live.add(seg)
            new = table.slice(self._live.get(seg, 0))
            self._live[seg] = table.num_rows
            if new.num_rows:
                new = new.filter(pc.equal(new.column("_endpoint"), self.endpoint))
            if new.num_rows:
                self._remember(seg, new)
                tables.append(self._columns(new))
        for stem in [s for s in self._live if s not in read_live]:
            del self._live[stem]  # compacted: what was taken is in self._taken
        logs = LogFiles(self.where)
        first = hour_name(self.start)
        hours = [h for h in logs.hours(self.kind, self.endpoint) if h >= first]
        for path, _ in logs.parts(self.kind, self.endpoint, hours):
            seg = segment_of(path)
            if path in self._parts or seg in read_live:
                continue
            part = logs.cached_table(path, None, self.columns)
            self._parts.add(path)
            taken = self._taken.pop((seg, path.rsplit("hour=", 1)[-1].split("/", 1)[0]), None)
            if taken is not None:
                part = _after(part, *taken, path)
            if part.num_rows:
                tables.append(self._columns(part))
        if not tables:
            return pa.table({c: pa.array([], pa.null()) for c in self.columns})
        out = concat_tables(tables)
        ts = out.column("_ts").cast(pa.int64())
        out = out.filter(pc.greater_equal(ts, bound_us(self.start)))
        self.rows_read += out.num_rows
        return out

    def _remember(self, seg: str, rows: pa.Table) -> None:
        """Count the rows taken live per hour (the part each will be compacted into)."""
        ts = rows.column("_ts").cast(pa.int64()).to_numpy() // HOUR_US
        ids = rows.column("_request_id")
        first = bound_us(self.start) // HOUR_US  # earlier hours are never listed
        for h in np.unique(ts[ts >= first]):
            where = np.flatnonzero(ts == h)
            key = (seg, hour_of(int(h) * HOUR_US))
            n, _ = self._taken.get(key, (0, ""))
            self._taken[key] = (n + len(where), ids[int(where[-1])].as_py())

    def _columns(self, table: pa.Table) -> pa.Table:
        return table.select([c for c in self.columns if c in table.column_names])


def _after(part: pa.Table, n: int, last: str, path: str) -> pa.Table:
    """The rows of ``part`` after the first ``n`` (taken live), checking the ``n``-th."""
    if part.num_rows < n or part.column("_request_id")[n - 1].as_py() != last:
        raise TailLost(f"{path} does not begin with the {n} rows read from its segment")
    return part.slice(n)
