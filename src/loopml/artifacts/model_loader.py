"""Loading a registered version's model: digest checked by the artifact store, manifest
signature checked when a public key is configured, then the format's safe loader.

:func:`verify_version` is the check on its own, for every reader of a version (the server
loading its model, the monitor reading its reference profile, retraining comparing with the
champion): the registry row must agree with its manifest on everything the manifest covers
(artifact, format, model, reference profile, input signature), and with a public key
configured the manifest must carry a valid Ed25519 signature under it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loopml.artifacts.formats import load_model
from loopml.artifacts.signing import verify_manifest
from loopml.artifacts.store import ArtifactStore
from loopml.config import Config
from loopml.errors import IntegrityError, SignatureError


def load_for_project(artifacts: ArtifactStore, version: Mapping[str, Any], cfg: Config) -> Any:
    """:func:`load_version` with the project's trust settings (``model.trusted_types``,
    ``model.trust_pickle``, ``security.public_key``)."""
    key = cfg.security.public_key
    return load_version(
        artifacts,
        version,
        trusted_types=cfg.model.trusted_types,
        trust_pickle=cfg.model.trust_pickle,
        public_key=str(cfg.path(key)) if key else None,
    )


def load_version(
    artifacts: ArtifactStore,
    version: Mapping[str, Any],
    *,
    trusted_types: Sequence[str] = (),
    trust_pickle: bool = False,
    public_key: str | None = None,
) -> Any:
    """The model of ``version`` (a row of the versions table), refusing anything unverified."""
    verify_version(version, public_key)
    data = artifacts.get_bytes(version["artifact"])
    return load_model(
        data, version["format"], trusted_types=trusted_types, trust_pickle=trust_pickle
    )


# what a manifest covers, by registry column (manifest key)
_COVERED = {
    "artifact": "artifact_sha256",
    "format": "format",
    "model": "model",
    "reference_profile": "reference_profile",
    "signature": "signature",
}


def verify_version(version: Mapping[str, Any], public_key: str | None = None) -> None:
    """Refuse a version whose registry row disagrees with its manifest, or (with
    ``public_key``) whose manifest is unsigned or not signed by that key."""
    manifest = version.get("manifest") or {}
    vid = version.get("id")
    for column, key in _COVERED.items():
        if key in manifest and column in version and manifest[key] != version[column]:
            raise IntegrityError(
                f"Version {vid}: its manifest and its registry row disagree on {column!r}. The "
                f"registry was altered after registration; do not use this version (disable it "
                f"with 'loopml disable {vid}').",
                field=column,
            )
    if public_key:
        if not version.get("manifest_signature"):
            raise SignatureError(
                f"Version {vid} is not signed, and a public key is configured "
                f"(security.public_key), so unsigned versions are refused. Retrain with "
                f"security.private_key set, or remove the public key.",
                field="signature",
            )
        verify_manifest(dict(manifest), version["manifest_signature"], public_key)
