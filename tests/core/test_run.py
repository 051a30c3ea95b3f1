"""`loopml run` end to end on a small real project: registration, lineage, failures that
leave no half-written version, and the CLI's exit codes and JSON listings."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import CONFIG, make_project

from loopml.artifacts.model_loader import load_version
from loopml.artifacts.signing import generate_keypair
from loopml.artifacts.store import ArtifactStore
from loopml.cli import main
from loopml.config import load_config
from loopml.errors import IntegrityError, SignatureError, UnsafeArtifactError
from loopml.store import Store
from loopml.train import run


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_registers_version_with_lineage(project, capsys):
    code, _, _ = _cli(capsys, "-c", str(project), "run")
    assert code == 0
    code, _, _ = _cli(capsys, "-c", str(project), "run")
    assert code == 0
    code, out, _ = _cli(capsys, "-c", str(project), "versions", "--json")
    v2, v1 = json.loads(out)
    assert v1["status"] == v2["status"] == "candidate"
    assert len(v1["artifact_sha256"]) == 64 and v1["metrics"]["accuracy"] > 0.6
    assert set(v1["data_snapshots"]) == {"train", "test"}
    assert v2["lineage"]["parent"] == v1["version"] and v1["lineage"]["parent"] is None
    assert v1["lineage"]["run"] != v2["lineage"]["run"]
    # same data -> same snapshot hashes; the artifact is the file the digest names
    assert v1["data_snapshots"] == v2["data_snapshots"]
    cfg = load_config(project)
    path = ArtifactStore(cfg.artifacts_root).local_path(v1["artifact_sha256"])
    assert Path(path).exists()
    code, out, _ = _cli(capsys, "-c", str(project), "runs", "--json")
    runs = json.loads(out)
    assert (
        runs[0]["status"] == "succeeded"
        and runs[0]["python"]
        and runs[0]["packages"]["scikit-learn"]
    )
    assert runs[0]["peak_memory_mb"] > 0 and runs[0]["cpu_seconds"] > 0
    code, out, _ = _cli(capsys, "-c", str(project), "decisions", "--json")
    assert [d["action"] for d in json.loads(out)] == ["register", "register"]


def test_run_on_postgres(tmp_path, pg_url):
    proj = make_project(tmp_path / "p", store=pg_url)
    result = run(load_config(proj))
    assert result.passed and result.version["status"] == "candidate"
    assert (
        Store(pg_url).versions.get(result.version["id"])["artifact"] == result.version["artifact"]
    )


def _counts(project: Path) -> tuple[int, int]:
    store = Store(load_config(project).store_url)
    return len(store.versions.list()), len(store.runs.list())


def test_tampered_artifact_is_refused_naming_both_digests(project):
    cfg = load_config(project)
    v = run(cfg).version
    art = ArtifactStore(cfg.artifacts_root)
    path = Path(art.local_path(v["artifact"]))
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(IntegrityError) as e:
        load_version(art, v)
    actual = e.value.details["actual"]
    assert actual != v["artifact"]
    assert v["artifact"] in str(e.value) and actual in str(e.value)  # both digests named


def test_malicious_pickle_version_is_refused_without_running(project, tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    cfg = load_config(project)
    v = dict(run(cfg).version)
    art = ArtifactStore(cfg.artifacts_root)
    v["artifact"] = art.put_bytes(pickle.dumps(Evil()), suffix=".pkl")
    v["manifest"] = {**v["manifest"], "artifact_sha256": v["artifact"], "format": "pickle"}
    v["format"] = "pickle"
    with pytest.raises(UnsafeArtifactError):
        load_version(art, v)  # trust_pickle off: refused outright
    with pytest.raises(UnsafeArtifactError, match=r"posix\.system|os\.system"):
        load_version(art, v, trust_pickle=True)  # trusted: scanned, still refused
    assert not marker.exists()


def test_signed_versions_and_refusal_of_unsigned(tmp_path):
    priv, pub = generate_keypair(tmp_path / "keys")
    proj = make_project(tmp_path / "p", config=CONFIG + f"security:\n  private_key: {priv}\n")
    cfg = load_config(proj)
    v = run(cfg).version
    art = ArtifactStore(cfg.artifacts_root)
    assert load_version(art, v, public_key=pub) is not None
    with pytest.raises(SignatureError, match="not signed"):
        load_version(art, {**v, "manifest_signature": None}, public_key=pub)
    with pytest.raises(SignatureError):
        load_version(art, {**v, "manifest": {**v["manifest"], "packages": {}}}, public_key=pub)


def test_bad_yaml_key_is_exit_2_and_touches_nothing(project, capsys):
    (project / "loopml.yaml").write_text(CONFIG.replace("target: label", "targt: label"))
    code, _, err = _cli(capsys, "-c", str(project), "run")
    assert code == 2
    assert "line 4" in err and "Did you mean 'target'" in err and "Traceback" not in err
    assert not (project / ".loopml").exists()


def test_missing_data_file_is_exit_2_and_touches_nothing(project, capsys):
    (project / "data/train.parquet").unlink()
    code, _, err = _cli(capsys, "-c", str(project), "run")
    assert code == 2 and "does not exist" in err and "data.train" in err
    assert not (project / ".loopml").exists()


def test_training_function_that_raises(project, capsys):
    _cli(capsys, "-c", str(project), "run")
    before = _counts(project)
    (project / "loopml.yaml").write_text(CONFIG.replace("train.py:train", "train.py:broken"))
    code, _, err = _cli(capsys, "-c", str(project), "run")
    assert code == 3  # a failure in the user's code, not a verdict of the gates
    assert "RuntimeError: the GPU caught fire" in err and "no version was registered" in err
    versions, runs = _counts(project)
    assert (
        versions == before[0] and runs == before[1] + 1
    )  # the failed run is recorded, nothing else
    assert Store(load_config(project).store_url).runs.list()[0]["status"] == "failed"


def test_failing_gate_exits_1_and_records_rejected_version(project, capsys):
    cfg = CONFIG + "gates:\n  metrics:\n    thresholds: {accuracy: '>= 0.999'}\n"
    (project / "loopml.yaml").write_text(cfg)
    code, out, _ = _cli(capsys, "-c", str(project), "run")
    assert code == 1
    code, out, _ = _cli(capsys, "-c", str(project), "versions", "--json")
    [v] = json.loads(out)
    assert v["status"] == "rejected"
    assert any(g["gate"] == "metrics" and g["verdict"] == "fail" for g in v["gates"])


def test_help_starts_fast():
    best = min(_timed_help() for _ in range(3))
    assert best <= 0.5, f"loopml --help took {best:.2f} s"


def _timed_help() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "loopml.cli", "--help"], check=True, capture_output=True)
    return time.perf_counter() - t


def test_every_command_in_the_parser_has_a_handler():
    """Guards against a command module of the cli package not being imported (no handler)."""
    import argparse

    from loopml.cli import COMMANDS, build_parser

    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == set(COMMANDS)


def test_a_closed_stdout_pipe_ends_quietly(project):
    """``loopml runs --json | head``: the reader leaves before the output is written."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "loopml.cli", "-c", str(project), "runs", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # long before the interpreter has started
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
