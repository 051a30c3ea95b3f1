"""What a run records beyond git: the training entry point and the sha256 of the project's
Python files (shown in `versions --json` and the card), and the thread limit it trained with."""

from __future__ import annotations

import hashlib
import json

from tests.conftest import CONFIG

from loopml.cli import main
from loopml.config import load_config
from loopml.evaluate.documents.card import model_card
from loopml.evaluate.documents.card_text import card_markdown
from loopml.store import Store


def test_code_lineage_outside_git_is_recorded_and_shown(project, capsys):
    (project / "features.py").write_text("SCALE = 2\n")
    assert main(["-c", str(project), "run"]) == 0
    capsys.readouterr()
    assert main(["-c", str(project), "versions", "--json"]) == 0
    [v] = json.loads(capsys.readouterr().out)
    code = v["lineage"]["code"]
    assert code["entry_point"] == "train.py:train"
    digest = hashlib.sha256((project / "train.py").read_bytes()).hexdigest()
    assert code["files"] == {
        "features.py": hashlib.sha256(b"SCALE = 2\n").hexdigest(),
        "train.py": digest,
    }
    store = Store(load_config(project).store_url)
    version, run = store.versions.get(v["version"]), store.runs.get(v["lineage"]["run"])
    assert run["details"]["code"] == code
    md = card_markdown(model_card(version, run))
    assert "entry point `train.py:train`" in md and digest in md


def test_thread_limit_is_applied_and_recorded(project, capsys):
    """Regression: `loopml run` left BLAS/OpenMP at one thread per core (88-98 s on a busy
    two-core box against 8-10 s with one thread) and the run did not say which it used."""
    assert main(["-c", str(project), "run"]) == 0
    (project / "loopml.yaml").write_text(
        CONFIG.replace("  train: train.py:train", "  train: train.py:train\n  threads: 2")
    )
    assert main(["-c", str(project), "run"]) == 0
    capsys.readouterr()
    assert main(["-c", str(project), "runs", "--json"]) == 0
    second, first = json.loads(capsys.readouterr().out)
    assert first["details"]["threads"]["limit"] == 1 and second["details"]["threads"]["limit"] == 2
    for run, n in ((first, 1), (second, 2)):
        libs = run["details"]["threads"]["libraries"]
        assert libs and all(lib["num_threads"] == n for lib in libs)


FAIR = CONFIG + "gates:\n  fairness: {min_positives: 600}\n"


def test_card_fairness_section_says_how_it_was_judged(project, capsys):
    """Regression: the card had no intervals, thresholds or use_intervals setting, a rate on
    too few positives looked normal, and the positive class was not named."""
    (project / "loopml.yaml").write_text(FAIR)
    main(["-c", str(project), "run"])
    store = Store(load_config(project).store_url)
    version = store.versions.get(1)
    cfg = load_config(project).model_dump(mode="json")
    card = model_card(version, store.runs.get(version["run_id"]), cfg)
    fair = card["fairness"]
    assert fair["use_intervals"] is True and fair["thresholds"] == {"demographic_parity_ratio": 0.8}
    assert fair["positive_class"] == 1 and card["data"]["positive_class"] == 1
    check = fair["checks"]["demographic_parity_ratio"]
    assert len(check["interval"]) == 2
    md = card_markdown(card)
    assert "use_intervals: yes" in md and "positive class 1" in md
    assert "| demographic_parity_ratio | 0.8 |" in md
    assert "(n/s: positives=" in md  # every group's TPR rests on < 600 positives


def test_dashboard_version_page_card_has_target_rows_and_source(project, capsys):
    """Regression: the version page built the card without the config and snapshots, so
    target, rows and source showed '-'."""
    from loopml.ui import pages

    assert main(["-c", str(project), "run"]) == 0
    cfg = load_config(project)
    card = pages.version(Store(cfg.store_url), cfg, 1)["card"]["fields"]
    assert card["data"]["target"] == "label"
    train = next(s for s in card["data"]["snapshots"] if s["role"] == "train")
    assert train["rows"] == 3200 and train["source"] == "data/train.parquet"


def test_endpoint_report_writes_the_format_asked(project, capsys, tmp_path):
    """Regression: `loopml report --endpoint E --format md|json` wrote HTML."""
    assert main(["-c", str(project), "run"]) == 0
    assert main(["-c", str(project), "deploy", "tiny", "1"]) == 0
    for fmt in ("json", "md"):
        out = tmp_path / f"r.{fmt}"
        assert (
            main(
                [
                    "-c",
                    str(project),
                    "report",
                    "--endpoint",
                    "tiny",
                    "--format",
                    fmt,
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        text = out.read_text()
        assert "<html" not in text.lower()
        if fmt == "json":
            assert json.loads(text)["title"].startswith("Endpoint tiny")
        else:
            assert text.startswith("# Endpoint tiny") and "## Feature drift" in text
