"""Time every evaluate gate on the employment data, all ~69k rows held out.

The model is a HistGradientBoosting classifier trained on a 20k-row sample (the training set of
the data and label gates); the champion is a second model (other seed). Prints the seconds per
gate, for the goal "all gates but stability <= 10 s", then permutation importance, the model
card, and stability with k=5 seeds (4 retrainings) separately.
Run: ``.venv/bin/python bench/fairness/gates_employment.py``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench/, after this folder

import pandas as pd
from harness import Clock
from threadpoolctl import threadpool_limits


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from loopml.evaluate.checklist.behaviour import BehaviourGate
    from loopml.evaluate.documents.card import card_markdown, model_card
    from loopml.evaluate.documents.version_report import card_html
    from loopml.evaluate.gating.data_gate import DataGate
    from loopml.evaluate.gating.fairness import FairnessGate
    from loopml.evaluate.gating.gates import GateContext, run_gates
    from loopml.evaluate.gating.label_lint import LabelGate
    from loopml.evaluate.gating.metric_gates import ChampionGate, MetricGate
    from loopml.evaluate.gating.stability import StabilityGate
    from loopml.evaluate.measure.slices import metrics_by_slice
    from loopml.evaluate.xai.importance import permutation_importance_table

    root = Path(importlib.util.find_spec("nannyml").submodule_search_locations[0])
    df = pd.read_parquet(root / "datasets/data/employment_MA_reference.pq")
    df = df.drop(columns=["prediction", "predicted_probability"])
    feats = [c for c in df.columns if c not in ("employed", "id", "year")]
    train = df.sample(20000, random_state=0)

    def train_fn(X, y, params, seed=0):
        return HistGradientBoostingClassifier(
            categorical_features="from_dtype", random_state=seed, **params
        ).fit(X, y)

    params = {"max_iter": 100}
    with threadpool_limits(1):
        fit = lambda seed: train_fn(train[feats], train["employed"], params, seed)  # noqa: E731
        model, champion = fit(0), fit(1)
        with Clock() as t_ctx:
            ctx = GateContext(
                model=model,
                X_test=df[feats],
                y_test=df["employed"],
                sensitive=["SEX", "RAC1P"],
                segments=["MAR"],
                target="employed",
                champion=champion,
                train=train,
                features=feats,
                train_fn=train_fn,
                train_params=params,
            )
        with Clock() as t_slices:
            rows = metrics_by_slice(
                df,
                ctx.y_test,
                ctx.predictions,
                ctx.proba,
                sensitive=["SEX", "RAC1P"],
                segments=["MAR"],
                classes=[0, 1],
            )
        gates = [
            MetricGate(thresholds={"accuracy": ">= 0.75", "roc_auc": ">= 0.85"}, per_slice=True),
            FairnessGate(
                thresholds={"demographic_parity_ratio": 0.8, "equal_opportunity_ratio": 0.8}
            ),
            BehaviourGate(
                tests=[
                    {"type": "INV", "perturbation": "swap", "max_failure_rate": 0.15},
                    {
                        "type": "INV",
                        "perturbation": "noise",
                        "columns": ["AGEP"],
                        "scale": 0.02,
                        "max_failure_rate": 0.05,
                    },
                    {
                        "type": "DIR",
                        "column": "SCHL",
                        "step": 2,
                        "tolerance": 0.05,
                        "max_failure_rate": 0.1,
                    },
                ]
            ),
            ChampionGate(),
            DataGate(),
            LabelGate(),
        ]
        results, cpu = [], []
        with Clock() as t_gates:
            for gate in gates:  # one at a time: CPU seconds per gate (wall time suffers from load)
                with Clock() as one:
                    results += run_gates([gate], ctx)
                cpu.append(one.cpu)
        with Clock() as t_imp:
            importance = permutation_importance_table(model, df[feats], df["employed"], n_repeats=3)
        with Clock() as t_stab:
            stability = run_gates([StabilityGate(seeds=5)], ctx)[0]
    version = {
        "id": 1,
        "model": "employment",
        "number": 1,
        "status": "candidate",
        "run_id": 1,
        "metrics": {"n": len(df)},
        "slices": rows,
        "gates": [r.to_dict() for r in results],
        "extra": {"importance": importance},
        "snapshots": {},
        "created_at": time.time(),
    }
    with Clock() as t_card:
        html = card_html(model_card(version))
        md = card_markdown(model_card(version))
    print(f"rows={len(df):,}  slices={len(rows)}")
    print(f"context (predict + predict_proba of the candidate): {t_ctx.wall:6.2f} s")
    print(f"metrics_by_slice:                                    {t_slices.wall:6.2f} s")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for r, c in zip(results, cpu, strict=True):
        print(
            f"gate {r.gate:10s} {r.verdict:17s} {r.seconds:6.2f} s wall {c:6.2f} s cpu  "
            f"{r.message[:80]}"
        )
    print(
        f"all gates: {t_gates.wall:.2f} s wall, {t_gates.cpu:.2f} s cpu (goal <= 10 s); "
        f"with context and slices: "
        f"{t_gates.wall + t_ctx.wall + t_slices.wall:.2f} s"
    )
    top = ", ".join(f"{r['feature']} {r['importance']:.3f}" for r in importance[:4])
    print(f"permutation importance (3k rows x 3 repeats): {t_imp.wall:6.2f} s  top: {top}")
    print(f"model card html ({len(html):,} chars) + markdown ({len(md):,}): {t_card.wall:6.2f} s")
    ev = stability.evidence
    print(
        f"stability k=5 (4 retrainings, {sum(ev.get('train_seconds', [])):.2f} s training): "
        f"{t_stab.wall:6.2f} s wall {t_stab.cpu:6.2f} s cpu  {stability.verdict}: {stability.message[:160]}"
    )


if __name__ == "__main__":
    main()
