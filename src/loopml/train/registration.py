"""The last step of a run: store the reference profile and the model (checking that it loads
back safely and predicts the same), build and optionally sign the manifest, and register the
version in one transaction with its lineage."""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from typing import Any

import numpy as np
import pandas as pd

from loopml.artifacts.store import ArtifactStore
from loopml.config import Config
from loopml.data.signature import Signature
from loopml.errors import DataError, NotFoundError, TrainingError, UnsafeArtifactError
from loopml.evaluate.gating.gates import blocks
from loopml.store import Store
from loopml.store.rows import VersionRow
from loopml.train import environment
from loopml.types import Mapper

SUFFIX = {
    "skops": ".skops",
    "onnx": ".onnx",
    "lightgbm": ".txt",
    "xgboost": ".json",
    "pickle": ".pkl",
}


def output_frame(pred: np.ndarray, proba: np.ndarray | None) -> pd.DataFrame:
    """The model's outputs as monitored columns: ``_prediction`` and ``_score``."""
    out = {"_prediction": pred}
    if proba is not None:
        out["_score"] = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
    return pd.DataFrame(out)


def reference_bytes(
    train_df: pd.DataFrame,
    features: list[str],
    target: str,
    pred: np.ndarray,
    proba: np.ndarray | None,
) -> bytes:
    """Reference statistics computed once, at training time: features + label on the train set,
    model outputs on the test set (what monitoring compares windows against)."""
    from loopml.stats.profile import DatasetProfile

    feats = DatasetProfile.from_frame(train_df[[*features, target]])
    outs = DatasetProfile.from_frame(output_frame(pred, proba))
    doc = {"features": feats.to_dict(), "outputs": outs.to_dict()}
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 6)


def importance(
    cfg: Config,
    model: Any,
    X: pd.DataFrame,
    y: Any,
    features: list[str],
    task: str,
    engine_map: Mapper | None = None,
) -> list[dict[str, Any]]:
    """Permutation importance on a capped test sample (kept small: it is re-predicting)."""
    from loopml.evaluate.xai.importance import permutation_importance_table

    return permutation_importance_table(
        model,
        X,
        y,
        features=features,
        task=task,
        n_repeats=2,
        max_rows=500,
        seed=cfg.model.seed,
        engine_map=engine_map,
    )


def parent_of(cfg: Config, store: Store) -> int | None:
    if cfg.deploy is not None:
        try:
            ep = store.endpoints.get(cfg.deploy.endpoint)
            if ep["champion_id"] is not None:
                return int(ep["champion_id"])
        except NotFoundError:
            pass
    for v in store.versions.list(model=cfg.model.name, limit=50):
        if v["status"] != "rejected":
            return int(v["id"])
    return None


def save_checked(
    cfg: Config, artifacts: ArtifactStore, model: Any, X_check: pd.DataFrame
) -> tuple[str, str | None]:
    """Save the model, then load it back the way the server will and compare predictions.

    Returns the artifact's digest and, when loading it back is refused (a type outside the
    allowlist, a module that does not import), why: the version is then recorded as rejected
    with that verdict, so the run keeps its gate verdicts."""
    from loopml.artifacts.formats import load_model, save_model

    fmt = cfg.model.format
    data = save_model(model, fmt)
    try:  # loaded before it is stored: a refused artifact never enters the artifact store
        loaded = load_model(
            data,
            fmt,
            trusted_types=cfg.model.trusted_types,
            trust_pickle=cfg.model.trust_pickle,
        )
    except (UnsafeArtifactError, DataError) as e:
        digest = hashlib.sha256(data).hexdigest()
        return digest, (
            f"The saved model was refused when loaded back the way the server loads it, so it "
            f"cannot be served: {e.message} The refused artifact was not kept in the artifact "
            f"store (sha256 {digest[:12]}...)."
        )
    digest = artifacts.put_bytes(data, suffix=SUFFIX[fmt])
    if artifacts.get_bytes(digest) != data:  # what the server will read back (sha256-checked)
        raise TrainingError(f"The artifact store returned other bytes for {digest}.")
    a, b = np.asarray(model.predict(X_check)), np.asarray(loaded.predict(X_check))
    if a.shape != b.shape or not (a == b).all():
        raise TrainingError(
            f"The model saved as {fmt!r} predicts differently once loaded back "
            f"({int((a != b).sum())} of {len(a)} rows differ). Use another "
            f"model.format, or report the model type."
        )
    return digest, None


def register(
    cfg: Config,
    store: Store,
    artifacts: ArtifactStore,
    *,
    model: Any,
    run_id: int,
    signature: Signature,
    train_df: pd.DataFrame,
    features: list[str],
    metrics: dict[str, Any],
    slices: list[dict[str, Any]],
    verdicts: list[dict[str, Any]],
    passed: bool,
    snapshots: dict[str, str],
    snapshot_ids: dict[str, int],
    actor: str,
    pred: np.ndarray,
    proba: np.ndarray | None,
    X_test: pd.DataFrame,
    y_test: Any,
    extra: dict[str, Any] | None = None,
    engine_map: Mapper | None = None,
) -> VersionRow:
    """Save the model (checked as the server will load it), its reference profile and signed
    manifest, and register the version: a candidate when every blocking gate passed, else
    rejected. Permutation importance predicts where ``engine_map`` runs work."""
    digest, refused = save_checked(cfg, artifacts, model, X_test.head(256))
    if refused is not None:
        verdicts = [
            *verdicts,
            {
                "gate": "artifact",
                "verdict": "fail",
                "blocking": True,
                "message": refused,
                "evidence": {"format": cfg.model.format, "artifact": digest},
                "seconds": 0.0,
            },
        ]
        passed = False
    extra = _details(cfg, model, extra, train_df, features, signature, proba, X_test, y_test)
    extra["importance"] = importance(
        cfg, model, X_test, y_test, features, signature.task, engine_map
    )
    ref = artifacts.put_bytes(
        reference_bytes(train_df, features, cfg.data.target, pred, proba), suffix=".profile"
    )
    manifest, sig = _manifest(cfg, digest, snapshots, ref, signature)
    status = "candidate" if passed else "rejected"
    failed = [v["gate"] for v in verdicts if blocks(v)]
    reason = (
        "all blocking gates passed"
        if passed
        else f"rejected: blocking gate(s) failed or could not judge: {', '.join(failed)}"
    )
    now = time.time()
    expire = cfg.deploy.expire_after if cfg.deploy else None
    return store.versions.register(
        actor=actor,
        reason=reason,
        model=cfg.model.name,
        run_id=run_id,
        parent_id=parent_of(cfg, store),
        status=status,
        format=cfg.model.format,
        artifact=digest,
        reference_profile=ref,
        signature=signature.to_dict(),
        metrics=metrics,
        slices=slices,
        gates=verdicts,
        snapshots={**snapshots, "ids": snapshot_ids},
        manifest=manifest,
        manifest_signature=sig,
        extra=extra or {},
        created_at=now,
        expires_at=now + expire if expire else None,
    )


def _details(
    cfg: Config,
    model: Any,
    extra: dict[str, Any] | None,
    train_df: pd.DataFrame,
    features: list[str],
    signature: Signature,
    proba: np.ndarray | None,
    X_test: pd.DataFrame,
    y_test: Any,
) -> dict[str, Any]:
    """The version's details beside ``extra``: input schema, the explanation summary and (binary classifiers) the score calibration."""
    from loopml.evaluate.xai.attribution import summarise_version
    from loopml.stats.calibration import fit_calibration
    from loopml.stats.inferred_schema import infer_schema

    extra = dict(extra or {})
    extra["schema"] = infer_schema(train_df[features]).to_dict()
    extra["explanation"] = summarise_version(
        model, X_test[features], features=features, task=signature.task, seed=cfg.model.seed
    )
    classes = signature.classes
    if proba is not None and classes is not None and len(classes) == 2:
        # score -> observed rate on the test set, so estimated performance starts calibrated
        extra["calibration"] = fit_calibration(proba[:, 1], np.asarray(y_test) == classes[1])
    return extra


def _manifest(
    cfg: Config, digest: str, snapshots: dict[str, str], ref: str, signature: Signature
) -> tuple[dict[str, Any], str | None]:
    """The version's manifest, and its signature when ``security.private_key`` is set."""
    from loopml.artifacts.signing import build_manifest, sign_manifest

    manifest = build_manifest(
        digest,
        snapshots,
        environment.packages(),
        {
            "model": cfg.model.name,
            "format": cfg.model.format,
            "reference_profile": ref,
            "signature": signature.to_dict(),
        },
    )
    sig = (
        sign_manifest(manifest, str(cfg.path(cfg.security.private_key)))
        if cfg.security.private_key
        else None
    )
    return manifest, sig
