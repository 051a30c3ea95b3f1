"""Small helpers shared by the store's modules."""

from __future__ import annotations

from typing import Any


def row_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)
