"""``loopml inventory``: every version in production (champion, canary or shadow) with its card
summary, as rows for JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from loopml.evaluate.documents.card import iso, limitations

PRODUCTION = ("champion", "canary", "shadow")
COLUMNS = (
    "id",
    "model",
    "version",
    "status",
    "created_at",
    "expires_at",
    "run_id",
    "parent_id",
    "git_commit",
    "artifact",
    "train_snapshot",
    "accuracy",
    "roc_auc",
    "rmse",
    "r2",
    "gates_passed",
    "gates_failed",
    "gates_insufficient",
    "failed_gates",
    "limitations",
    "description",
    "intended_use",
)


def inventory_rows(
    versions: Iterable[Mapping[str, Any]],
    runs: Mapping[int, Mapping[str, Any]] | Sequence[Mapping[str, Any]] = (),
    *,
    statuses: Sequence[str] = PRODUCTION,
) -> list[dict[str, Any]]:
    """One flat row per version whose status is in ``statuses`` (by model, then version)."""
    by_run = dict(runs) if isinstance(runs, Mapping) else {r["id"]: r for r in runs}
    rows = []
    for v in versions:
        if v.get("status") not in statuses:
            continue
        run_id = v.get("run_id")
        run = (by_run.get(run_id) if run_id is not None else None) or {}
        gates = v.get("gates") or []
        metrics = v.get("metrics") or {}
        card = (v.get("extra") or {}).get("card") or {}
        rows.append(
            {
                "id": v.get("id"),
                "model": v.get("model"),
                "version": v.get("number"),
                "status": v.get("status"),
                "created_at": iso(v.get("created_at")),
                "expires_at": iso(v.get("expires_at")),
                "run_id": run_id,
                "parent_id": v.get("parent_id"),
                "git_commit": run.get("git_commit"),
                "artifact": v.get("artifact"),
                "train_snapshot": (v.get("snapshots") or {}).get("train"),
                **{m: metrics.get(m) for m in ("accuracy", "roc_auc", "rmse", "r2")},
                "gates_passed": sum(g["verdict"] == "pass" for g in gates),
                "gates_failed": sum(g["verdict"] == "fail" for g in gates),
                "gates_insufficient": sum(g["verdict"] == "insufficient_data" for g in gates),
                "failed_gates": [g["gate"] for g in gates if g["verdict"] == "fail"],
                "limitations": limitations(v),
                "description": card.get("description"),
                "intended_use": card.get("intended_use"),
            }
        )
    rows.sort(key=lambda r: (str(r["model"]), r["version"] or 0))
    return rows


def inventory_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as CSV: lists and dicts as JSON, ``None`` as an empty cell."""
    buf = io.StringIO()
    extra = [k for r in rows for k in r if k not in COLUMNS]
    fields = [*COLUMNS, *dict.fromkeys(extra)]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _cell(r.get(k)) for k in fields})
    return buf.getvalue()


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False)
    return v


INTEGERS = frozenset(
    {"id", "version", "run_id", "parent_id", "gates_passed", "gates_failed", "gates_insufficient"}
)
FLOATS = frozenset({"accuracy", "roc_auc", "rmse", "r2"})
JSON_COLUMNS = frozenset({"failed_gates", "limitations"})


def read_inventory_csv(text: str) -> list[dict[str, Any]]:
    """Parse :func:`inventory_csv` output back: known numeric columns as numbers, list columns
    from JSON, empty cells as ``None``, everything else as text."""
    out = []
    for raw in csv.DictReader(io.StringIO(text)):
        row: dict[str, Any] = {}
        for k, v in raw.items():
            if v == "":
                row[k] = None
            elif k in INTEGERS:
                row[k] = int(v)
            elif k in FLOATS:
                row[k] = float(v)
            elif k in JSON_COLUMNS:
                row[k] = json.loads(v)
            else:
                row[k] = v
        out.append(row)
    return out
