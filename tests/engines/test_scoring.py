"""``loopml score``: batch scoring through the serving loader and validator, logged with role
``batch``, resumable, on a real project (SQLite file, real artifacts, real Parquet)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopml.cli import main
from loopml.config import load_config
from loopml.errors import ConflictError, ValidationError
from loopml.logs.layout import request_id_millis
from loopml.scoring import score
from loopml.scoring.scorer import request_ids
from loopml.store import Store

from .conftest import NAMES, frame


def _input(root: Path, n: int = 3000, row_group: int = 500) -> Path:
    data = frame(n, seed=7).drop(columns=["label"])
    path = root / "batch.parquet"
    pq.write_table(pa.Table.from_pandas(data, preserve_index=False), path, row_group_size=row_group)
    return path


def _log_rows(root: Path) -> pa.Table:
    parts = sorted((root / ".loopml").rglob("predlog/endpoint=credit/hour=*/part-batch-*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in parts]) if parts else pa.table({})


def _model(root: Path, version: int):
    from loopml.artifacts.model_loader import load_version
    from loopml.artifacts.store import ArtifactStore

    cfg = load_config(root)
    store = Store(cfg.store_url)
    return load_version(ArtifactStore(cfg.artifacts_root), store.versions.get(version))


def _score(root: Path, target: str, src: Path | str, out: Path | str, *args: str) -> int:
    """``loopml -c root score target --input src --output out [args]``; the exit code."""
    return main(
        ["-c", str(root), "score", target, "--input", str(src), "--output", str(out), *args]
    )


def test_score_writes_input_columns_predictions_and_probabilities_and_logs_batch_rows(project):
    root, version = project
    src = _input(root)
    out = root / "scored.parquet"
    assert _score(root, "credit", src, out, "--chunk-rows", "1000", "--json") == 0
    got = pq.read_table(out).to_pandas()
    data = pq.read_table(src).to_pandas()
    assert list(got.columns[: data.shape[1]]) == list(data.columns)
    assert {"request_id", "prediction", "proba_0", "proba_1"} <= set(got.columns)
    pd.testing.assert_frame_equal(got[data.columns], data)
    model = _model(root, version)
    X = data[[*NAMES, "cat"]]
    np.testing.assert_array_equal(got["prediction"], model.predict(X))
    np.testing.assert_allclose(got[["proba_0", "proba_1"]], model.predict_proba(X), rtol=1e-12)
    assert got["request_id"].is_unique
    assert [p.name for p in (root / "scored.parquet.parts").iterdir()] == ["_loopml_score.json"]

    log = _log_rows(root)
    assert log.num_rows == len(data)
    assert set(log.column("_role").to_pylist()) == {"batch"}
    assert set(log.column("_version").to_pylist()) == {version}
    assert sorted(log.column("_request_id").to_pylist()) == sorted(got["request_id"])
    assert log.column("_latency_ms").null_count == log.num_rows  # no fake latencies


def test_rerunning_a_finished_single_file_job_logs_nothing_twice(project):
    """Guards against a rerun of a finished job scoring (and logging) every row again."""
    root, _ = project
    src = _input(root)
    cfg = load_config(root)
    store = Store(cfg.store_url)
    first = score(cfg, store, "credit", str(src), str(root / "o.parquet"), chunk_rows=1000)
    again = score(cfg, store, "credit", str(src), str(root / "o.parquet"), chunk_rows=1000)
    assert (again.rows, again.chunks, again.skipped_chunks) == (3000, 3, 3)
    assert first.rows == 3000 and _log_rows(root).num_rows == 3000
    assert pq.read_table(root / "o.parquet").num_rows == 3000


def test_the_log_part_has_the_schema_the_servers_compaction_writes():
    """Guards against batch log parts drifting from the server's (the monitor reads both)."""
    from loopml.logs.logtables import prediction_table
    from loopml.scoring.scorer import Job, log_table
    from loopml.serve.inference.request_rows import Batch

    cols = {"f0": np.array([0.5, 1.5]), "cat": np.array(["a", "b"], dtype=object)}
    ids = request_ids(2, 1_700_000_000_000)
    pred, proba = np.array([0, 1]), np.array([[0.8, 0.2], [0.3, 0.7]])
    job = Job(None, 3, "credit", "j", 1_700_000_000_000_000, "/x")  # type: ignore[arg-type]
    ours = log_table(job, ids, Batch(cols, 2), pred, proba)
    theirs = prediction_table(
        [
            {
                "e": "credit",
                "v": 3,
                "o": "batch",
                "r": ids.to_pylist(),
                "t": job.ts_us,
                "k": None,
                "l": 0.0,
                "f": {k: v.tolist() for k, v in cols.items()},
                "p": pred.tolist(),
                "q": proba.tolist(),
                "g": None,
            }
        ]
    )
    assert ours.schema.names == theirs.schema.names
    assert ours.schema.types == theirs.schema.types
    for name in ("_request_id", "_prediction", "_score", "_proba", "f0", "cat", "_ts"):
        assert ours.column(name).to_pylist() == theirs.column(name).to_pylist(), name


def test_log_columns_follow_the_servers_rules_for_mixed_values():
    from loopml.logs.logtables import _column
    from loopml.scoring.scorer import _log_column

    for values in (
        [1, "a", None],
        [True, None],
        [None, None],
        ["x", "y"],
        [1, 2.5, None],
    ):
        ours = _log_column(np.array(values, dtype=object))
        assert ours.type == _column(values).type, values
        assert ours.to_pylist() == _column(values).to_pylist(), values


def test_vectorised_request_ids_are_uuid7_at_the_given_time():
    ids = request_ids(1000, 1_700_000_123_456).to_pylist()
    assert len(set(ids)) == 1000
    assert {request_id_millis(i) for i in ids} == {1_700_000_123_456}
    assert all(i[14] == "7" and i[19] in "89ab" and len(i) == 36 for i in ids)


def test_a_rerun_resumes_only_missing_chunks_and_logs_no_row_twice(project):
    root, _ = project
    src = _input(root)
    out = root / "scored"
    cfg = load_config(root)
    store = Store(cfg.store_url)
    first = score(cfg, store, "credit", str(src), str(out), chunk_rows=1000)
    assert (first.rows, first.chunks, first.skipped_chunks) == (3000, 3, 0)
    before = pq.read_table(out / "part-000001.parquet").column("request_id").to_pylist()
    os.remove(out / "part-000001.parquet")  # as if the job died while writing chunk 1
    again = score(cfg, store, "credit", str(src), str(out), chunk_rows=1000)
    assert (again.rows, again.chunks, again.skipped_chunks) == (3000, 3, 2)
    after = pq.read_table(out / "part-000001.parquet").column("request_id").to_pylist()
    assert set(after).isdisjoint(before)  # chunk 1 was redone...
    log = _log_rows(root)
    assert log.num_rows == 3000  # ...and its log part replaced, not added to
    ids = set(pq.read_table(out).column("request_id").to_pylist())
    assert ids == set(log.column("_request_id").to_pylist())


def test_another_job_in_the_same_output_is_refused(project):
    root, _ = project
    src = _input(root)
    cfg = load_config(root)
    store = Store(cfg.store_url)
    score(cfg, store, "credit", str(src), str(root / "o"), chunk_rows=1000)
    with pytest.raises(ConflictError, match="another scoring job"):
        score(cfg, store, "credit", str(src), str(root / "o"), chunk_rows=500)


def test_csv_in_and_out_by_version_number(project):
    root, version = project
    data = frame(1200, seed=3).drop(columns=["label"])
    data.to_csv(root / "in.csv", index=False)
    cfg = load_config(root)
    summary = score(
        cfg,
        Store(cfg.store_url),
        str(version),
        str(root / "in.csv"),
        str(root / "out.csv"),
        chunk_rows=500,
    )
    assert summary.chunks == 3
    got = pd.read_csv(root / "out.csv")
    assert len(got) == 1200 and list(got.columns[-4:]) == [
        "request_id",
        "prediction",
        "proba_0",
        "proba_1",
    ]
    np.testing.assert_array_equal(got["id"], data["id"])


def test_bad_input_is_a_clear_error_naming_the_column(project, capsys):
    root, _ = project
    data = frame(300, seed=1).drop(columns=["label", "f3"])
    data.to_parquet(root / "bad.parquet")
    assert _score(root, "credit", root / "bad.parquet", root / "o") == 2
    assert "f3" in capsys.readouterr().err
    data = frame(300, seed=1).drop(columns=["label"])
    data["f2"] = data["f2"].astype(str)
    data.loc[7, "f2"] = "oops"
    data.to_parquet(root / "bad2.parquet")
    cfg = load_config(root)
    with pytest.raises(ValidationError, match="Chunk 0") as err:
        score(cfg, Store(cfg.store_url), "credit", str(root / "bad2.parquet"), str(root / "o2"))
    assert err.value.field == "f2"
    assert "oops" not in err.value.message  # errors never echo values


def test_unknown_target_and_missing_input_are_usage_errors(project, capsys):
    root, _ = project
    src = _input(root, n=100)
    assert _score(root, "nope", src, "x") != 0
    assert "neither a version number nor a known endpoint" in capsys.readouterr().err
    assert _score(root, "credit", root / "missing.parquet", "x") == 2
    assert "does not exist" in capsys.readouterr().err


def test_batch_rows_are_monitored_as_their_own_group(project):
    root, version = project
    src = _input(root)
    cfg = load_config(root)
    store = Store(cfg.store_url)
    score(cfg, store, "credit", str(src), str(root / "o"), chunk_rows=1000)
    from loopml.monitor import run_monitor

    summary = run_monitor(cfg, store, now=1e10)
    assert summary["endpoints"]["credit"]["computed"] >= 1
    rows = store.monitoring.series("credit", version=version, role="batch", until=1e10, limit=10)
    assert sum(r["rows"] for r in rows) == 3000
    json.dumps(summary, default=str)


def test_a_folder_of_parquet_files_is_scored_in_file_order(project):
    root, _ = project
    folder = root / "rows"
    folder.mkdir()
    parts = [frame(700, seed=s).drop(columns=["label"]) for s in (1, 2)]
    for i, part in enumerate(parts):
        part.to_parquet(folder / f"part-{i}.parquet", index=False)
    (folder / "_SUCCESS.parquet").write_bytes(b"not data")  # hidden names are skipped
    cfg = load_config(root)
    summary = score(cfg, Store(cfg.store_url), "credit", str(folder), str(root / "o"))
    assert (summary.rows, summary.chunks) == (1400, 2)
    got = pq.read_table(root / "o").to_pandas()
    np.testing.assert_array_equal(got["f0"], pd.concat(parts)["f0"])


def test_monitor_cli_takes_an_engine(project, capsys):
    root, _ = project
    assert _score(root, "credit", _input(root), root / "o", "--json") == 0
    capsys.readouterr()
    assert main(["-c", str(root), "monitor", "--engine", "local", "--json"]) == 0
    assert "endpoints" in json.loads(capsys.readouterr().out)
    assert main(["-c", str(root), "monitor", "--engine", "local", "--cpus", "0"]) == 2
    assert "--cpus must be at least 1" in capsys.readouterr().err
