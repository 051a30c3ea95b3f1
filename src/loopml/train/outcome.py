"""Printing a run's outcome for people: headline metrics, metrics per slice, verdicts."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from loopml.config import Config
from loopml.evaluate.gating.gates import blocks, verdict_word

HEADLINE = ("accuracy", "roc_auc", "log_loss", "f1", "precision", "recall", "mae", "rmse", "r2")


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def print_run(cfg: Config, result: Any, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    metrics = [m for m in HEADLINE if m in result.metrics]
    t = Table(title="Metrics per slice (test set)", title_justify="left")
    for c in ("slice", "n", *metrics):
        t.add_column(c, justify="right" if c != "slice" else "left")
    for s in result.slices:
        style = "dim" if s.get("insufficient") else None
        t.add_row(s["slice"], str(s["n"]), *(_f(s.get(m)) for m in metrics), style=style)
    console.print(t)
    v = result.version
    if v is None:
        return
    verdict = (
        "[green]registered as candidate[/]" if result.passed else "[red]rejected by the gates[/]"
    )
    console.print(f"Version [bold]{v['id']}[/] of {v['model']}: {verdict}")
    for g in result.gates:
        word = verdict_word(g)
        colour = "green" if word == "pass" else "red" if blocks(g) else "yellow"
        console.print(f"  [{colour}]{escape(word)}[/] {g['gate']}: {escape(g['message'])}")
    console.print(f"  run {result.run_id}; artifact sha256 {v['artifact']}")
    console.print(f"  store {cfg.store_url}")
    console.print(f"  artifacts {cfg.artifacts_root}")
    t = result.timings
    user = t["train"] + t.get("train_import", 0.0)
    console.print(
        f"  time: {t['total']:.2f} s total; {user:.2f} s in your training code "
        f"({t.get('train_import', 0.0):.2f} s importing {cfg.model.train.split(':')[0]}, "
        f"{t['train']:.2f} s training); {t['total'] - user:.2f} s loopml "
        f"({t.get('gates', 0):.2f} s gates)"
    )
