"""The demo's payoff in numbers: the live accuracy of what the loop served against the first
model left alone, scored on the same rows and true labels."""

from __future__ import annotations

from typing import Any

from loopml.store.rows import VersionRow


def payoff(answered: list[Any], first_model: Any, since: tuple[int, int]) -> dict[str, Any]:
    """Live accuracy of what the loop served vs. the first model left alone, on the same rows
    and true labels: over every month replayed, and over the months from ``since`` on."""
    import numpy as np

    out: dict[str, Any] = {}
    for part, chosen in (
        ("all", answered),
        ("since", [a for a in answered if a[0] >= since]),
    ):
        if not chosen:
            continue
        y = np.concatenate([a[2] for a in chosen])
        served = np.concatenate([a[3] for a in chosen])
        alone = np.concatenate([np.asarray(first_model.predict(a[1])) for a in chosen])
        out[part] = {
            "first": chosen[0][0],
            "last": chosen[-1][0],
            "months": len(chosen),
            "rows": len(y),
            "loop": float(np.mean(served == y)),
            "alone": float(np.mean(alone.astype(y.dtype) == y)),
        }
    return out


def tell_payoff(
    console: Any, cfg: Any, v1: VersionRow, answered: list[Any], *, since: tuple[int, int]
) -> None:
    """Live accuracy with the loop vs. the first model left alone, over the same months."""
    from loopml.artifacts.model_loader import load_version
    from loopml.artifacts.store import ArtifactStore

    first = load_version(ArtifactStore(cfg.artifacts_root), v1)
    got = payoff(answered, first, since)

    def span(p: dict[str, Any]) -> str:
        (y0, m0), (y1, m1) = p["first"], p["last"]
        return f"{y0}-{m0:02d} to {y1}-{m1:02d} ({p['months']} months, {p['rows']:,} rows)"

    for part, label in (("all", "Every month replayed"), ("since", "Since the 2018 change")):
        if part in got:
            p = got[part]
            console.print(
                f"{label}, {span(p)}: live accuracy with the loop [bold green]{p['loop']:.3f}"
                f"[/]; the 2015 model (version {v1['id']}) left alone on the same rows "
                f"[bold]{p['alone']:.3f}[/] ({p['loop'] - p['alone']:+.3f})."
            )
    console.print(
        "Why the estimate (CBPE) shows '-' from 2018: CBPE reads only the model's own "
        "confidence on the inputs, so it kept saying about 0.83. The 2018 change moved who is "
        "employed (the labels), not the inputs the model sees, so only labels could show it; "
        "once they put live accuracy outside the estimate's error band, the monitor withholds "
        "the estimate as unreliable (concept shift) instead of showing a confident number."
    )
