"""``loopml explain VERSION --input FILE``: per-row attributions of a registered version, the
same JSON as ``POST /v1/endpoints/{endpoint}/explain`` (one ``explanations`` entry per row,
``request_id`` taken from the file's ``data.id`` column when it has one)."""

from __future__ import annotations

import argparse
import json

from loopml.cli.commands import command, open_store, project_config


def read_rows(path: str) -> object:
    """A Parquet, CSV or JSON-lines file as a DataFrame (by its suffix)."""
    from pathlib import Path

    import pandas as pd

    from loopml.errors import UsageError

    p = Path(path)
    if not p.exists():
        raise UsageError(f"--input {path}: no such file.")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(p)
    if suffix == ".csv":
        return pd.read_csv(p)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return pd.read_json(p, lines=suffix != ".json")
    raise UsageError(
        f"--input {path}: unknown file type {suffix!r}; use .parquet, .csv, .jsonl or .json."
    )


@command
def cmd_explain(args: argparse.Namespace) -> int:
    """Explain a version's outputs on the rows of a file."""
    from loopml.artifacts.model_loader import load_for_project
    from loopml.artifacts.store import ArtifactStore
    from loopml.data.signature import Signature
    from loopml.errors import UsageError
    from loopml.evaluate.xai.background import version_explainer
    from loopml.evaluate.xai.explain import Budget
    from loopml.serve.wire.validation import Validator

    cfg = project_config(args)
    store = open_store(args)
    row = store.versions.get(args.version)
    artifacts = ArtifactStore(cfg.artifacts_root)
    model = load_for_project(artifacts, row, cfg)
    frame = read_rows(args.input)
    if args.limit is not None:
        frame = frame.head(args.limit)  # type: ignore[attr-defined]
    sig = Signature.from_dict(row["signature"])
    missing = [c for c in sig.names if c not in frame.columns]  # type: ignore[attr-defined]
    if missing:
        raise UsageError(
            f"--input {args.input} lacks the model's column(s) {', '.join(missing[:5])}; "
            f"version {args.version} takes {', '.join(sig.names)}."
        )
    validator = Validator(sig, extra="drop", unseen="accept", allow_nulls=True)
    columns = {}
    for col in sig.columns:
        values = frame[col.name]  # type: ignore[index]
        if col.kind == "category" and values.dtype.kind in "iufb":  # a CSV reads "2" as 2
            values = values.astype(str).where(values.notna(), None)
        columns[col.name] = values.to_numpy()
    X = validator.frame(validator.validate(columns))
    id_col = cfg.data.id
    ids = (
        [str(v) for v in frame[id_col]]  # type: ignore[index]
        if id_col and id_col in frame.columns  # type: ignore[attr-defined]
        else None
    )
    budget = Budget(background_rows=args.background, max_evals=args.max_evals)
    explainer = version_explainer(
        artifacts, row, model, target_class=args.cls, method=args.method, budget=budget
    )
    result = explainer.explain(X)
    answer = {
        "model_version": args.version,
        "output": result.output,
        "explanations": result.rows(ids),
    }
    text = json.dumps(answer, indent=None if args.out else 2)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
        print(
            f"Explained {len(X)} row(s) of version {args.version} ({result.method}, "
            f"{result.output}) -> {args.out}"
        )
    else:
        print(text)
    for note in result.notes:
        import sys

        print(f"note: {note}", file=sys.stderr)
    return 0
