"""Where the prediction log, the label log and the refusal counts live: the one module that
knows their names and paths.

Two places hold a log (:class:`LogLocation`):

- the **root** (``log.root``; default: the artifacts root, local folder or ``s3://`` URL)
  holds the Parquet parts every reader sees::

      {root}/<kind>/endpoint=<e>/hour=<YYYYMMDDHH>/part-<segment>--<replica>.parquet

  ``<kind>`` is ``predlog``, ``labels`` or ``refused``; a part is named after the segment it
  was compacted from and the replica that wrote it (so a rerun of a compaction overwrites it,
  never adds a second copy). Batch scoring writes ``part-batch-<job>-<chunk>.parquet``.
  Names starting with ``.`` or ``_`` are temporary files or folders and are never read.
- the **spool** (``log.spool``; a local folder of this machine) holds the write-ahead
  segments not compacted yet: ``{spool}/<kind>/_wal/seg-*.wal`` (``.done`` beside a segment
  once its parts are in the root). With a local root the spool is the root itself, so
  every process on the machine sees every segment; with a remote root each machine keeps
  its own.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from loopml.errors import UsageError
from loopml.store.endpoints import ENDPOINT_NAME

if TYPE_CHECKING:
    from loopml.config import Config

PREDICTIONS, LABELS, REFUSED = "predlog", "labels", "refused"
KINDS = (PREDICTIONS, LABELS, REFUSED)
WAL_DIR = "_wal"
SEGMENT_SUFFIX = ".wal"
DONE_SUFFIX = ".done"
HOUR = 3600
HOUR_US = HOUR * 1_000_000
_REPLICA_SEP = "--"  # never in a segment name (seg-<ns>-<pid>-<seq>, batch-<job>-<chunk>)
_UNSAFE = re.compile(r"[^A-Za-z0-9._]+")


@dataclass(frozen=True)
class LogLocation:
    """Where a log lives: ``root`` (Parquet parts, local path or fsspec URL), ``spool`` (this
    machine's write-ahead segments; ``None``: none to read) and ``replica`` (this writer's
    name in its part names)."""

    root: str
    spool: str | None = None
    replica: str = "local"

    @property
    def remote(self) -> bool:
        return is_remote(self.root)


def is_remote(root: str) -> bool:
    return "://" in root and not root.startswith("file://")


def as_location(where: LogLocation | str | Path) -> LogLocation:
    """A location from a bare root (tests, tools): a local root is its own spool."""
    if isinstance(where, LogLocation):
        return where
    root = str(where)
    return LogLocation(root, None if is_remote(root) else root)


def log_location(cfg: Config) -> LogLocation:
    """The project's log location (``log.root``, ``log.spool``, ``log.replica``): the one
    function the server, the monitor, the controller, the dashboard and batch scoring ask."""
    root = cfg.log.root or cfg.artifacts_root
    if not is_remote(root):
        root = str(cfg.path(root.removeprefix("file://")).resolve())
    spool = cfg.log.spool
    if spool is None:
        spool_path = cfg.path(".loopml/spool") if is_remote(root) else Path(root)
    else:
        spool_path = cfg.path(spool)
    replica = replica_name(cfg.log.replica or socket.gethostname())
    return LogLocation(root, str(spool_path.resolve()), replica)


def replica_name(name: str) -> str:
    """A replica name safe in a part's file name (letters, digits, '.', '_')."""
    return _UNSAFE.sub("_", name).strip("._")[:64] or "replica"


# -- names --------------------------------------------------------------------------------


def check_endpoint(endpoint: str) -> None:
    """Refuse endpoint names that cannot be a partition folder (``endpoint=<e>``)."""
    if not ENDPOINT_NAME.match(endpoint):  # the rule names are checked with at deploy
        raise UsageError(
            f"Endpoint names must be letters, digits, '.', '_' or '-' (at most 128). Got "
            f"{endpoint[:64]!r}.",
            field="endpoint",
        )


def hour_of(ts_us: int) -> str:
    """The hour partition (``YYYYMMDDHH``, UTC) of a timestamp in microseconds."""
    return datetime.fromtimestamp(ts_us / 1e6, UTC).strftime("%Y%m%d%H")


def hour_name(t: float) -> str:
    """The hour partition of a time in UNIX seconds."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y%m%d%H")


def hour_start(name: str) -> float:
    return datetime.strptime(name, "%Y%m%d%H").replace(tzinfo=UTC).timestamp()


def part_name(segment: str, replica: str | None = None) -> str:
    """The Parquet part compacted from ``segment`` by ``replica``."""
    tail = f"{_REPLICA_SEP}{replica}" if replica else ""
    return f"part-{segment}{tail}.parquet"


def segment_of(path: str) -> str:
    """The segment a part was compacted from (the inverse of :func:`part_name`)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name[len("part-") : -len(".parquet")].split(_REPLICA_SEP, 1)[0]


def is_part(name: str) -> bool:
    """Whether a file name is a finished Parquet part (not a temporary or hidden file)."""
    return name.startswith("part-") and name.endswith(".parquet")


def kind_url(root: str, kind: str) -> str:
    return f"{root.rstrip('/')}/{kind}"


def hour_url(root: str, kind: str, endpoint: str, hour: str) -> str:
    """The folder of one endpoint's hour of a log under ``root``."""
    return f"{kind_url(root, kind)}/endpoint={endpoint}/hour={hour}"


def wal_dir(spool: str | Path, kind: str) -> Path:
    """The write-ahead folder of a log kind in a spool."""
    return Path(spool) / kind / WAL_DIR


def segments(spool: str | Path | None, kind: str) -> list[Path]:
    """The segment files of a kind in a spool, oldest first (live and closed)."""
    if spool is None:
        return []
    return sorted(wal_dir(spool, kind).glob("*" + SEGMENT_SUFFIX))


def live_segments(spool: str | Path | None, kind: str) -> list[Path]:
    """Segments whose rows are not (all) in the root yet (no ``.done`` marker)."""
    return [p for p in segments(spool, kind) if not p.with_suffix(DONE_SUFFIX).exists()]


# -- request ids --------------------------------------------------------------------------


def request_id_millis(request_id: str) -> int | None:
    """The creation time (Unix ms) of a UUIDv7 request id, or ``None`` if it is not one."""
    if len(request_id) != 36 or request_id[14] != "7":
        return None
    try:
        return int(request_id[:8] + request_id[9:13], 16)
    except ValueError:
        return None


def is_uuid7(v: object) -> bool:
    return isinstance(v, str) and len(v) == 36 and v[14] == "7"


def id_floor(t: float) -> str:
    """The smallest UUIDv7 request id created at time ``t``: request ids sort by creation time,
    so a label part's ``_request_id`` range says which prediction windows it labels."""
    h = f"{int(t * 1000):012x}"
    return f"{h[:8]}-{h[8:12]}"
