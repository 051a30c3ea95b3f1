"""Opening the metadata store: engine settings per backend and schema migrations.

SQLite runs in WAL mode with a busy timeout so the server, the controller and the CLI can
share one file. Opening an older database upgrades it (Alembic); a database written by a
newer loopml is refused rather than touched. An empty database gets the tables of
``schema.py`` in one transaction, stamped at HEAD, which skips importing and replaying Alembic
on a project's first run; a test replays the migrations and checks they build the same schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from loopml.errors import ConfigError, StoreVersionError

HEAD = "0007"  # newest migration this loopml knows; keep in step with migrations/versions
KNOWN = ("0001", "0002", "0003", "0004", "0005", "0006", "0007")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=15000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (sqlite:///path or postgresql+psycopg://...)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    except (SQLAlchemyError, ImportError) as e:
        raise ConfigError(
            f"Cannot use the metadata store URL {url!r}: {e}. Use sqlite:///path/to/loopml.db "
            f"or postgresql+psycopg://user@host/db (pip install 'loopml[postgres]')."
        ) from None
    return engine


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine, *, replay: bool = False) -> str | None:
    """Bring the schema to HEAD; refuse a database from a newer loopml. Returns the old revision.

    An empty database is created from ``schema.metadata`` directly unless ``replay`` asks for
    the migrations to be run one by one (tests compare the two)."""
    try:
        before = current_revision(engine)
    except OperationalError as e:
        raise ConfigError(
            f"Cannot open the metadata store at {engine.url!r}: {e.orig}. Check the 'store:' URL "
            f"in loopml.yaml and that the database server is running."
        ) from None
    if before == HEAD:
        return before
    if before is not None and before not in KNOWN:
        raise StoreVersionError(
            f"The metadata store at {engine.url!r} is at schema revision {before!r}, written by a "
            f"newer loopml than this one (which knows up to {HEAD!r}). Upgrade loopml "
            f"(pip install -U loopml); the database was not changed."
        )
    if before is None and not replay and _create_if_empty(engine):
        return None
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, HEAD)
    return before


def _create_if_empty(engine: Engine) -> bool:
    """Create every table at HEAD in an empty database; False if it holds any table."""
    from loopml.store.tables import metadata

    with engine.begin() as conn:
        if inspect(conn).get_table_names():
            return False
        metadata.create_all(conn)
        conn.execute(
            text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD})
    return True
