"""Loading a registered version's model: digest checked by the artifact store, manifest
signature checked when a public key is configured, then the format's safe loader."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loopml.artifacts.formats import load_model
from loopml.artifacts.signing import verify_manifest
from loopml.artifacts.store import ArtifactStore
from loopml.errors import IntegrityError, SignatureError


def load_version(
    artifacts: ArtifactStore,
    version: Mapping[str, Any],
    *,
    trusted_types: Sequence[str] = (),
    trust_pickle: bool = False,
    public_key: str | None = None,
) -> Any:
    """The model of ``version`` (a row of the versions table), refusing anything unverified."""
    manifest = version["manifest"]
    if manifest.get("artifact_sha256") not in (None, version["artifact"]):
        raise IntegrityError(
            f"Version {version['id']}: its manifest names artifact {manifest.get('artifact')} but "
            f"the registry row names {version['artifact']}. The registry was altered; do not serve "
            f"this version (disable it with 'loopml disable {version['id']}')."
        )
    if public_key:
        if not version.get("manifest_signature"):
            raise SignatureError(
                f"Version {version['id']} is not signed, and a public key is configured "
                f"(security.public_key), so unsigned versions are refused. Retrain with "
                f"security.private_key set, or remove the public key."
            )
        verify_manifest(manifest, version["manifest_signature"], public_key)
    data = artifacts.get_bytes(version["artifact"])
    return load_model(
        data, version["format"], trusted_types=trusted_types, trust_pickle=trust_pickle
    )
