"""The model card, gate report and inventory from a version row built by real gates: HTML
parses, holds no external URL, shows the verdicts and limitations; the inventory CSV
round-trips."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from tests._helpers.models import fitted_context

from loopml.evaluate.checklist.behaviour import BehaviourGate
from loopml.evaluate.documents.card import model_card
from loopml.evaluate.documents.card_text import card_markdown
from loopml.evaluate.documents.inventory import inventory_csv, inventory_rows, read_inventory_csv
from loopml.evaluate.documents.version_report import (
    card_html,
    gate_report_html,
    gate_report_json,
    render,
)
from loopml.evaluate.gating.data_gate import DataGate
from loopml.evaluate.gating.fairness import FairnessGate
from loopml.evaluate.gating.gates import run_gates
from loopml.evaluate.gating.label_lint import LabelGate
from loopml.evaluate.measure.metrics import classification_metrics
from loopml.evaluate.measure.slices import metrics_by_slice
from loopml.evaluate.xai.importance import importance_shift, permutation_importance_table


@pytest.fixture(scope="module")
def version() -> dict:
    rng = np.random.default_rng(0)
    n = 2400
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "sex": rng.choice(["F", "M"], n),
            "race": rng.choice(["A", "B", "C"], n, p=[0.6, 0.39, 0.01]),
        }
    )
    df["y"] = (df["x"] + rng.normal(0, 0.7, n) > 0).astype(int)
    df["id"] = np.arange(n)
    train, test = df.iloc[:1600], df.iloc[1600:].reset_index(drop=True)
    ctx = fitted_context(LogisticRegression(), train, test, ["x", "z"], sensitive=["sex", "race"])
    model, feats = ctx.model, ["x", "z"]
    gates = [
        FairnessGate(),
        DataGate(),
        LabelGate(),
        BehaviourGate(
            tests=[
                {
                    "type": "DIR",
                    "column": "x",
                    "step": -1.0,
                    "expect": "up",
                    "name": "<script>x</script>",
                }
            ]
        ),
    ]
    results = run_gates(gates, ctx)
    metrics = classification_metrics(test["y"], ctx.predictions, ctx.proba, classes=[0, 1])
    slices = metrics_by_slice(
        test, test["y"], ctx.predictions, ctx.proba, sensitive=["sex", "race"], classes=[0, 1]
    )
    imp = permutation_importance_table(model, test[feats], test["y"], n_repeats=2)
    row = {
        "id": 7,
        "model": "employment",
        "number": 3,
        "status": "champion",
        "run_id": 11,
        "parent_id": 5,
        "format": "skops",
        "artifact": "ab" * 32,
        "metrics": metrics,
        "slices": slices,
        "gates": [r.to_dict() for r in results],
        "snapshots": {"train": "cd" * 32, "test": "ef" * 32, "ids": {"train": 1, "test": 2}},
        "signature": {"inputs": [{"name": "x"}, {"name": "z"}]},
        "extra": {
            "importance": imp,
            "importance_shift": importance_shift(imp, imp[::-1]),
            "card": {"description": "Predicts employment | for tests"},
        },
        "created_at": 1_700_000_000.0,
        "expires_at": 1_710_000_000.0,
    }
    return json.loads(json.dumps(row))  # exactly what the store's JSON columns give back


RUN = {
    "id": 11,
    "git_commit": "0123abc",
    "git_dirty": False,
    "trigger": "drift",
    "params": {"C": 1.0},
    "python": "3.11",
    "started_at": 1_700_000_000.0,
    "snapshots": {},
    "wall_seconds": 3.0,
    "train_seconds": 1.0,
    "peak_memory_mb": 200.0,
}
CFG = {
    "model": {"intended_use": "Screening research only."},
    "data": {"target": "y", "sensitive": ["sex", "race"]},
}


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.urls, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Collect:
    p = Collect()
    p.feed(html)
    p.close()
    return p


def test_the_card_holds_every_section(version):
    card = model_card(version, RUN, CFG, snapshots={"train": {"rows": 1600, "source": "d.pq"}})
    assert card["intended_use"]["description"].startswith("Predicts employment")
    assert card["intended_use"]["intended_use"] == "Screening research only."
    assert {s["role"]: s["rows"] for s in card["data"]["snapshots"]} == {"train": 1600, "test": 800}
    assert card["metrics"]["overall"]["n"] == 800
    assert card["fairness"]["sensitive"] == ["sex", "race"]
    assert [g["gate"] for g in card["gates"]] == ["fairness", "data", "labels", "behaviour"]
    assert card["lineage"] == {
        **card["lineage"],
        "run_id": 11,
        "parent_id": 5,
        "git_commit": "0123abc",
    }
    text = " ".join(card["limitations"])
    assert "too small for fairness" in text and "race=C" in text  # 1% group, not judged
    assert "Behavioural test DIR" in text  # the planted failing DIR test
    assert "expires on 2024-03-09" in text
    assert card["importance"][0]["feature"] == "x"


def test_html_is_self_contained_and_escaped(version):
    html = card_html(model_card(version, RUN, CFG))
    p = parse(html)
    assert "script" not in p.tags and "svg" in p.tags and "style" in p.tags
    assert p.urls == [] and not re.search(r"(src|href)\s*=\s*['\"]?https?://", html)
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    words = " ".join(p.text)
    for heading in (
        "Intended use",
        "Data",
        "Metrics",
        "Fairness",
        "Gate verdicts",
        "Feature importance",
        "Limitations",
        "Lineage",
    ):
        assert heading in words
    report = gate_report_html(version)
    p = parse(report)
    assert p.urls == [] and "script" not in p.tags
    assert "blocking gate(s) failed: behaviour" in report and "<details>" in report


def test_markdown_and_json_reports(version):
    md = card_markdown(model_card(version, RUN, CFG))
    assert md.startswith("# Model card: employment v3")
    assert "Predicts employment \\| for tests" in md  # pipes escaped inside tables
    assert "| fairness |" in md and "## Limitations" in md
    rep = gate_report_json(version)
    assert rep["passed"] is False and rep["blocking_failures"] == ["behaviour"]
    assert sum(rep["counts"].values()) == 4
    assert json.loads(render(version, RUN, CFG, fmt="json"))["gates"]["version"] == 3


def test_inventory_lists_production_versions_and_the_csv_round_trips(version):
    retired = {**version, "id": 8, "number": 4, "status": "retired"}
    shadow = {
        **version,
        "id": 9,
        "number": 5,
        "status": "shadow",
        "parent_id": None,
        "expires_at": None,
    }
    rows = inventory_rows([retired, shadow, version], [RUN])
    assert [(r["id"], r["status"]) for r in rows] == [(7, "champion"), (9, "shadow")]
    failed = [g["gate"] for g in version["gates"] if g["verdict"] == "fail"]
    assert "behaviour" in failed
    assert rows[0]["git_commit"] == "0123abc" and rows[0]["gates_failed"] == len(failed)
    assert rows[0]["failed_gates"] == failed and rows[1]["expires_at"] is None
    back = read_inventory_csv(inventory_csv(rows))
    assert back == rows
