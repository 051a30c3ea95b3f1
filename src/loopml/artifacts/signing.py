"""Ed25519 signatures over a model version's manifest (MITRE ATLAS M0013 "Code Signing").

The manifest lists the artifact digest, the data snapshot hashes and the package versions
(an AI bill of materials, M0023). It is signed as canonical JSON: sorted keys, no spaces,
UTF-8, so the same manifest always gives the same bytes. Keys are PEM files (PKCS#8 private,
SubjectPublicKeyInfo public) made with ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from loopml.errors import ConfigError, SignatureError

MANIFEST_VERSION = 1


def build_manifest(
    artifact_digest: str,
    data_hashes: dict[str, str] | None = None,
    packages: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The dictionary that gets signed: artifact digest, data hashes, package versions, extra."""
    manifest: dict[str, Any] = dict(extra or {})
    manifest.update(
        {
            "manifest_version": MANIFEST_VERSION,
            "artifact_sha256": artifact_digest,
            "data": dict(data_hashes or {}),
            "packages": dict(packages or {}),
        }
    )
    return manifest


def canonical_json(manifest: dict[str, Any]) -> bytes:
    """Manifest bytes as signed: sorted keys, no spaces, UTF-8, no NaN."""
    try:
        return json.dumps(
            manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise SignatureError(
            f"The manifest cannot be written as canonical JSON ({exc}). Use only strings, "
            f"numbers, booleans, lists and dictionaries with string keys.",
            field="manifest",
        ) from exc


def _pem(key: str | bytes | os.PathLike[str], what: str) -> bytes:
    if isinstance(key, bytes):
        return key
    text = os.fspath(key)
    if "-----BEGIN" in text:
        return text.encode()
    try:
        return Path(text).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"The {what} key file {text!r} cannot be read ({exc.strerror}). Point the signing "
            f"setting in loopml.yaml at a PEM file made by `generate_keypair`.",
            field="signing",
        ) from exc


def _private(key: str | bytes | os.PathLike[str]) -> Ed25519PrivateKey:
    try:
        k = serialization.load_pem_private_key(_pem(key, "private"), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"The private signing key is not an unencrypted PEM private key ({exc}).",
            field="signing",
        ) from exc
    if not isinstance(k, Ed25519PrivateKey):
        raise ConfigError("The private signing key must be an Ed25519 key.", field="signing")
    return k


def _public(key: str | bytes | os.PathLike[str]) -> Ed25519PublicKey:
    try:
        k = serialization.load_pem_public_key(_pem(key, "public"))
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"The public verification key is not a PEM public key ({exc}).", field="signing"
        ) from exc
    if not isinstance(k, Ed25519PublicKey):
        raise ConfigError("The public verification key must be an Ed25519 key.", field="signing")
    return k


def sign_manifest(manifest: dict[str, Any], private_key: str | bytes | os.PathLike[str]) -> str:
    """Sign the canonical JSON of ``manifest``; return the signature as base64 text.

    ``private_key`` is PEM text/bytes or the path of a PEM file.
    """
    return base64.b64encode(_private(private_key).sign(canonical_json(manifest))).decode()


def verify_manifest(
    manifest: dict[str, Any],
    signature_b64: str | None,
    public_key: str | bytes | os.PathLike[str],
) -> None:
    """Raise ``SignatureError`` unless ``signature_b64`` signs ``manifest`` under the key."""
    digest = manifest.get("artifact_sha256") if isinstance(manifest, dict) else None
    if not signature_b64:
        raise SignatureError(
            f"Model artifact {digest} has no signature, but a public key is configured, so "
            f"unsigned versions are refused. Sign the version's manifest with the matching "
            f"private key (or remove the public key from loopml.yaml to stop requiring it).",
            field="signature",
            artifact_sha256=digest,
        )
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(
            f"The signature of model artifact {digest} is not valid base64, so it was refused.",
            field="signature",
            artifact_sha256=digest,
        ) from exc
    try:
        _public(public_key).verify(signature, canonical_json(manifest))
    except InvalidSignature as exc:
        raise SignatureError(
            f"The signature of model artifact {digest} does not match its manifest under the "
            f"configured public key: the manifest was changed after signing, or it was signed "
            f"with another key. It was refused. Re-sign the version with the right private key "
            f"if the change is legitimate; otherwise treat it as tampering.",
            field="signature",
            artifact_sha256=digest,
        ) from exc


def generate_keypair(directory: str | os.PathLike[str], name: str = "loopml") -> tuple[str, str]:
    """Write ``{name}.key`` (private, mode 0600) and ``{name}.pub`` in ``directory``."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub"
    if private_path.exists():
        raise ConfigError(
            f"{private_path} already exists; refusing to overwrite a signing key. Move it away "
            f"or choose another name.",
            field="signing",
        )
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return str(private_path), str(public_path)
