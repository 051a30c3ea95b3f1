"""A model's input signature: the columns it takes, their kinds and category sets.

Inferred from the training frame at ``loopml run`` and stored with the version as JSON;
the server compiles it into a validator. Kinds are deliberately few:

- ``number``: int or float columns (``dtype`` keeps the exact numpy dtype seen),
- ``bool``,
- ``category``: strings or pandas categoricals, with the category set seen in training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd

Kind = Literal["number", "bool", "category"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    dtype: str
    nullable: bool = False
    categories: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Signature:
    columns: tuple[Column, ...]
    task: Literal["classification", "regression"] = "classification"
    target: str | None = None
    classes: tuple[Any, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for c in d["columns"]:
            c["categories"] = list(c["categories"]) if c["categories"] is not None else None
        d["classes"] = list(self.classes) if self.classes is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Signature:
        cols = tuple(
            Column(
                name=c["name"],
                kind=c["kind"],
                dtype=c["dtype"],
                nullable=c.get("nullable", False),
                categories=tuple(c["categories"]) if c.get("categories") is not None else None,
            )
            for c in d["columns"]
        )
        classes = d.get("classes")
        return cls(
            columns=cols,
            task=d.get("task", "classification"),
            target=d.get("target"),
            classes=tuple(classes) if classes is not None else None,
            extra=d.get("extra") or {},
        )


def _to_py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def infer_signature(
    frame: pd.DataFrame,
    features: list[str],
    *,
    task: Literal["classification", "regression"] = "classification",
    target: str | None = None,
    classes: list[Any] | None = None,
) -> Signature:
    """Infer the signature of ``features`` in ``frame`` (vectorised, one pass per column)."""
    cols = []
    for name in features:
        s = frame[name]
        nullable = bool(s.isna().any())
        if pd.api.types.is_bool_dtype(s):
            cols.append(Column(name, "bool", "bool", nullable))
        elif pd.api.types.is_numeric_dtype(s):
            cols.append(Column(name, "number", str(s.dtype), nullable))
        else:
            cats = sorted({_to_py(v) for v in s.dropna().unique()}, key=str)
            cols.append(Column(name, "category", "string", nullable, tuple(cats)))
    return Signature(
        columns=tuple(cols),
        task=task,
        target=target,
        classes=tuple(_to_py(c) for c in classes) if classes is not None else None,
    )
