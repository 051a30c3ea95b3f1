"""Stores for tests: a fresh Postgres database, and rows for tests that need a store without
training (a version registered with no model file)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from loopml.store import Store


def fresh_pg_database(server: str, prefix: str, skip_unreachable: str = "") -> Iterator[str]:
    """The URL of a new, empty database on the Postgres ``server`` (any database URL of it),
    dropped (forced) afterwards. With ``skip_unreachable`` (what the test wanted the server
    for) a server that refuses the connection skips the test instead of failing it."""
    import pytest
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin_url = server.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as e:
        admin.dispose()
        if not skip_unreachable:
            raise
        pytest.skip(f"no Postgres server {skip_unreachable} at {server}: {e}")
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def number_signature(
    columns: list[str], *, task: str = "classification", target: str = "y", classes=(0, 1)
) -> dict[str, Any]:
    """A model signature of float64 ``columns``; a classifier's has ``classes``."""
    return {
        "columns": [
            {"name": c, "kind": "number", "dtype": "float64", "nullable": False, "categories": None}
            for c in columns
        ],
        "task": task,
        "target": target,
        "classes": list(classes) if task == "classification" else None,
        "extra": {},
    }


def version_row(
    store: Store,
    *,
    model: str = "m",
    status: str = "candidate",
    signature: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    **values: Any,
) -> dict[str, Any]:
    """A version of ``model`` from a fresh run, its artifact a digest of nothing stored: for the
    store, the controller and the monitor, which never load the model."""
    run = store.runs.start(
        project="p", model=model, params={}, snapshots={}, python="3.11", packages={}
    )
    row = {"slices": [], "gates": [], "snapshots": {}, "manifest": {}, **values}
    return store.versions.register(
        model=model,
        run_id=run,
        status=status,
        format="skops",
        artifact="a" * 64,
        signature={} if signature is None else signature,
        metrics={"accuracy": 0.9} if metrics is None else metrics,
        **row,
    )
