"""The model card: one dict per version built from what the registry already stores, and its
Markdown rendering (HTML is in :mod:`loopml.evaluate.documents.version_report`).

Sections follow Mitchell et al., "Model Cards for Model Reporting" (FAT* 2019): intended use,
data, metrics overall and per slice, fairness, gate verdicts, explanations, limitations and
lineage. Intended use comes from the config (``model.description``, ``model.intended_use``,
``model.out_of_scope``, ``model.owners``) or from ``version["extra"]["card"]``. Limitations
are derived, never typed by hand: groups too small to judge, gates without enough data,
failing behavioural tests, advisory failures, rows quarantined by the label lint.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from loopml.evaluate.xai.attribution import fairness_gaps

FORMAT = "loopml.card/1"
#: the headline metrics shown per slice, in this order (whichever the task has)
HEADLINE = (
    "n",
    "accuracy",
    "roc_auc",
    "f1",
    "precision",
    "recall",
    "log_loss",
    "positive_rate",
    "base_rate",
    "mae",
    "rmse",
    "r2",
)
USE_KEYS = ("description", "intended_use", "out_of_scope", "owners")


def iso(ts: float | None) -> str | None:
    """A UNIX time as an ISO-8601 UTC string (``None`` stays ``None``)."""
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(float(ts), _dt.UTC).isoformat(timespec="seconds")


def _headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in HEADLINE if metrics.get(k) is not None}


def key_evidence(gate: Mapping[str, Any]) -> dict[str, Any]:
    """The few numbers of a stored verdict a reader needs (the full evidence stays in JSON)."""
    ev = gate.get("evidence") or {}
    name = gate.get("gate")
    if "error" in ev:
        return {"error": ev["error"]}
    if name == "metrics":
        return {
            f"{c['metric']} on {c['slice']}": c["value"]
            for c in ev.get("checks", [])
            if c["slice"] == "overall" or c["verdict"] != "pass"
        }
    if name == "fairness":
        return {k: c.get("value") for k, c in (ev.get("checks") or {}).items()}
    if name == "behaviour":
        return {
            f"{t['type']} {t['name']}": f"{t['n_failed']}/{t['n']} failed"
            for t in ev.get("tests", [])
        }
    if name == "champion":
        return {
            f"{label} {ev.get('metric')}": f"{c.get('challenger')} vs {c.get('champion')}"
            for label, c in (ev.get("comparisons") or {}).items()
        }
    if name == "data":
        return {
            "rows": ev.get("n_rows"),
            "duplicate share": ev.get("duplicate_share"),
            "issues": len(ev.get("issues", [])),
            "strongest feature AUC": (ev.get("leakage") or [{}])[0].get("auc"),
        }
    if name == "labels":
        return {
            "flagged fraction": (ev.get("label_issues") or {}).get("flagged_fraction"),
            "minority share": ev.get("minority_share"),
            "outlier fraction": (ev.get("outliers") or {}).get("fraction"),
            "quarantined ids": len(ev.get("quarantine", [])),
        }
    if name == "stability":
        return {
            f"{ev.get('metric')} spread": ev.get("spread"),
            "disagreement": (ev.get("disagreement") or {}).get("pairwise_mean"),
            "trainings": ev.get("trainings"),
            "train seconds": round(sum(ev.get("train_seconds") or []), 2),
        }
    return {k: v for k, v in ev.items() if isinstance(v, (int, float, str, bool))}


def limitations(version: Mapping[str, Any]) -> list[str]:
    """Limitations derived from the stored verdicts and slices."""
    out: list[str] = []
    gates = version.get("gates") or []
    for g in gates:
        ev = g.get("evidence") or {}
        if g["verdict"] == "insufficient_data":
            out.append(f"Not judged ({g['gate']} gate, insufficient data): {g['message']}")
        elif g["verdict"] == "fail" and not g.get("blocking", True):
            out.append(f"Advisory gate '{g['gate']}' failed: {g['message']}")
        if g["gate"] == "fairness" and ev.get("small_groups"):
            small = ev["small_groups"]
            out.append(
                f"{len(small)} subgroup(s) were too small for fairness to be judged: "
                f"{', '.join(map(str, small[:8]))}{' ...' if len(small) > 8 else ''}."
            )
        if g["gate"] == "behaviour":
            for t in ev.get("tests", []):
                if t.get("verdict") == "fail":
                    out.append(
                        f"Behavioural test {t['type']} '{t['name']}' fails on "
                        f"{t['n_failed']} of {t['n']} rows."
                    )
        if g["gate"] == "labels" and ev.get("quarantine"):
            out.append(
                f"{len(ev['quarantine'])} training rows are quarantined for label or "
                "outlier review (they were kept in training)."
            )
        if g["gate"] == "split":
            for w in ev.get("warnings", []):
                out.append(f"Test split: {w}.")
        if g["gate"] == "data":
            for i in ev.get("issues", []):
                if i.get("severity") == "warn":
                    out.append(f"Training data: {i['message']}.")
    small = [s for s in version.get("slices") or [] if s.get("insufficient")]
    if small:
        out.append(
            f"{len(small)} slice(s) have too few held-out rows for reliable metrics: "
            f"{', '.join(s['slice'] for s in small[:8])}{' ...' if len(small) > 8 else ''}."
        )
    if version.get("expires_at"):
        out.append(
            f"This version expires on {iso(version['expires_at'])} and must be "
            "re-validated or retrained by then."
        )
    return out


def _intended_use(version: Mapping[str, Any], cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    model_cfg = dict((cfg or {}).get("model") or {})
    stored = dict((version.get("extra") or {}).get("card") or {})
    return {k: stored.get(k, model_cfg.get(k)) for k in USE_KEYS}


def _snapshots(
    version: Mapping[str, Any],
    snapshots: Mapping[str, Mapping[str, Any]] | None,
    run: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    hashes = {k: v for k, v in (version.get("snapshots") or {}).items() if isinstance(v, str)}
    if not hashes and run:
        hashes = dict(run.get("snapshots") or {})
    rows = []
    for role, digest in hashes.items():
        info = dict((snapshots or {}).get(role) or {})
        rows.append(
            {"role": role, "hash": digest, "rows": info.get("rows"), "source": info.get("source")}
        )
    test = next((r for r in rows if r["role"] == "test"), None)
    if test is not None and test["rows"] is None:
        test["rows"] = (version.get("metrics") or {}).get("n")
    return rows


def positive_class(version: Mapping[str, Any], data_cfg: Mapping[str, Any]) -> Any:
    """The class scored as positive: ``data.positive_class``, else the larger of two classes
    (``classes_[1]``, as every metric and gate takes it); None for regression or multiclass."""
    classes = (version.get("signature") or {}).get("classes") or []
    if data_cfg.get("positive_class") is not None:
        return data_cfg["positive_class"]
    return classes[1] if len(classes) == 2 else None


def model_card(
    version: Mapping[str, Any],
    run: Mapping[str, Any] | None = None,
    cfg: Mapping[str, Any] | None = None,
    *,
    snapshots: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The card of one version (a row of ``store.versions``) and its run (``store.runs``).

    ``cfg`` is the project's config as a dict (``Config.model_dump()``) for intended use and
    data settings; ``snapshots`` maps a role ("train", "test") to its snapshot row for row
    counts and sources. Every value comes from the stored rows; nothing is recomputed.
    """
    extra = dict(version.get("extra") or {})
    gates = list(version.get("gates") or [])
    fairness = next((g for g in gates if g.get("gate") == "fairness"), None)
    fair_section = None
    if fairness is not None:
        report = (fairness.get("evidence") or {}).get("report") or {}
        ev = fairness.get("evidence") or {}
        settings = report.get("settings") or {}
        fair_section = {
            "verdict": fairness["verdict"],
            "message": fairness["message"],
            "sensitive": report.get("sensitive", []),
            "groups": report.get("groups", []),
            "criteria": report.get("criteria", {}),
            "checks": ev.get("checks", {}),
            "small_groups": ev.get("small_groups", []),
            "min_group_size": settings.get("min_group_size", 30),
            # how it was judged: the thresholds, intervals or point estimates, the positive class
            "use_intervals": ev.get("use_intervals"),
            "confidence": ev.get("confidence", settings.get("confidence")),
            "thresholds": ev.get("thresholds")
            or {k: c.get("threshold") for k, c in (ev.get("checks") or {}).items()},
            "block_insufficient": ev.get("block_insufficient"),
            "positive_class": settings.get("pos_label"),
            "minimums": {
                k: settings.get(k)
                for k in (
                    "min_group_size",
                    "min_positives",
                    "min_negatives",
                    "min_predicted_positives",
                )
            },
        }
    data_cfg = dict((cfg or {}).get("data") or {})
    run = dict(run or {})
    return {
        "format": FORMAT,
        "model": {
            "name": version.get("model"),
            "version": version.get("number"),
            "id": version.get("id"),
            "status": version.get("status"),
            "format": version.get("format"),
            "artifact": version.get("artifact"),
            "created_at": iso(version.get("created_at")),
            "expires_at": iso(version.get("expires_at")),
        },
        "intended_use": _intended_use(version, cfg),
        "data": {
            "snapshots": _snapshots(version, snapshots, run),
            "target": data_cfg.get("target"),
            "sensitive": data_cfg.get("sensitive", []),
            "segments": data_cfg.get("segments", []),
            "features": (version.get("signature") or {}).get("inputs"),
            "positive_class": positive_class(version, data_cfg),
        },
        "metrics": {
            "overall": _headline(version.get("metrics") or {}),
            "slices": [
                {
                    "slice": s["slice"],
                    "kind": s.get("kind"),
                    "insufficient": bool(s.get("insufficient")),
                    **_headline(s),
                }
                for s in version.get("slices") or []
            ],
        },
        "fairness": fair_section,
        "gates": [
            {
                "gate": g["gate"],
                "verdict": g["verdict"],
                "blocking": g.get("blocking"),
                "message": g["message"],
                "seconds": g.get("seconds"),
                "key_evidence": key_evidence(g),
            }
            for g in gates
        ],
        "importance": extra.get("importance") or [],
        "importance_shift": extra.get("importance_shift"),
        "attributions": extra.get("explanation"),
        "fairness_gaps": fairness_gaps(gates),
        "limitations": limitations(version),
        "lineage": {
            "run_id": version.get("run_id"),
            "parent_id": version.get("parent_id"),
            "git_commit": run.get("git_commit"),
            "git_dirty": run.get("git_dirty"),
            "trigger": run.get("trigger"),
            "params": run.get("params"),
            "python": run.get("python"),
            "started_at": iso(run.get("started_at")),
            "wall_seconds": run.get("wall_seconds"),
            "train_seconds": run.get("train_seconds"),
            "peak_memory_mb": run.get("peak_memory_mb"),
            "code": extra.get("code") or (run.get("details") or {}).get("code"),
            "threads": (
                extra.get("threads") or (run.get("details") or {}).get("threads") or {}
            ).get("limit"),
        },
    }


def card_markdown(card: Mapping[str, Any]) -> str:
    """The card as Markdown (the renderer lives in :mod:`loopml.evaluate.documents.card_text`; kept here
    for the callers that import it from this module)."""
    from loopml.evaluate.documents.card_text import card_markdown as render

    return render(card)
