"""Pinned versions: a client names the version that answers (``/v2/models/{e}/versions/{v}``),
e.g. to test a candidate before it takes traffic."""

from __future__ import annotations

import asyncio
from typing import Any

from loopml.errors import NotFoundError, UnavailableError
from loopml.serve.inference.pool import ModelPool, describe
from loopml.serve.inference.routing import TrafficTable
from loopml.serve.inference.watcher import TrafficWatcher


async def pinned(
    store: Any,
    pool: ModelPool,
    watcher: TrafficWatcher,
    endpoint: str,
    table: TrafficTable,
    version: int,
) -> tuple[int, str]:
    """The version a client pinned and its role: the serving champion answers as usual;
    another version of the endpoint's model (a candidate, say) is loaded on first use and
    answers with role ``pinned``, mirrored to nobody."""
    if version == table.serving:
        return version, "champion"
    if version in table.disabled:
        raise _disabled(await asyncio.to_thread(store.versions.disabled_note, version))
    if version not in pool.loaded:
        row = await asyncio.to_thread(store.versions.get, version)
        st = watcher.state(endpoint)
        if st.row is not None and row["model"] != st.row["model"]:
            raise NotFoundError(
                f"Version {version} belongs to model {row['model']!r}, not to endpoint "
                f"{endpoint[:64]!r} (model {st.row['model']!r}).",
                field="version",
            )
        if row["status"] == "disabled":
            raise _disabled(await asyncio.to_thread(store.versions.disabled_note, version))
        failures = await pool.ensure([version])
        if version in failures:
            raise UnavailableError(
                f"Version {version} could not be loaded: {describe(failures[version])}",
                field="version",
            )
    pool.pin(version)
    return version, "pinned"


def _disabled(note: str) -> UnavailableError:
    return UnavailableError(
        f"{note[:1].upper()}{note[1:]}. An admin can re-enable it with 'loopml enable'.",
        field="version",
    )
