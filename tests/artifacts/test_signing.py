"""Ed25519 manifest signatures: good ones verify; tampering, wrong keys and absence fail."""

from __future__ import annotations

import os
import stat

import pytest

from loopml.artifacts import (
    build_manifest,
    canonical_json,
    generate_keypair,
    sign_manifest,
    verify_manifest,
)
from loopml.errors import ConfigError, SignatureError


@pytest.fixture(scope="module")
def keys(tmp_path_factory):  # type: ignore[no-untyped-def]
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def manifest() -> dict:
    return build_manifest(
        "ab" * 32,
        data_hashes={"train": "cd" * 32},
        packages={"scikit-learn": "1.9.1", "numpy": "2.4.6"},
        extra={"model": "employment", "version": 3},
    )


def test_good_signature_verifies_with_path_or_pem(keys, manifest):
    private, public = keys
    sig = sign_manifest(manifest, private)
    verify_manifest(manifest, sig, public)
    with open(public) as f:
        verify_manifest(dict(reversed(list(manifest.items()))), sig, f.read())  # key order


def test_private_key_file_is_owner_only(keys):
    assert stat.S_IMODE(os.stat(keys[0]).st_mode) == 0o600


def test_canonical_json_is_compact_and_sorted(manifest):
    text = canonical_json(manifest).decode()
    assert " " not in text and text.index('"artifact_sha256"') < text.index('"data"')


def test_tampered_manifest_is_refused(keys, manifest):
    sig = sign_manifest(manifest, keys[0])
    for change in ({"artifact_sha256": "ef" * 32}, {"packages": {"numpy": "1.0"}}):
        with pytest.raises(SignatureError, match="does not match"):
            verify_manifest({**manifest, **change}, sig, keys[1])


def test_wrong_key_is_refused(keys, manifest, tmp_path):
    _, other_public = generate_keypair(tmp_path, "other")
    with pytest.raises(SignatureError, match="another key"):
        verify_manifest(manifest, sign_manifest(manifest, keys[0]), other_public)


@pytest.mark.parametrize("sig", [None, ""])
def test_missing_signature_is_refused(keys, manifest, sig):
    with pytest.raises(SignatureError, match="no signature"):
        verify_manifest(manifest, sig, keys[1])


def test_garbage_signature_and_bad_keys(keys, manifest, tmp_path):
    with pytest.raises(SignatureError, match="base64"):
        verify_manifest(manifest, "not base64!!", keys[1])
    with pytest.raises(ConfigError, match="cannot be read"):
        verify_manifest(manifest, "AAAA", str(tmp_path / "missing.pub"))
    with pytest.raises(ConfigError, match="overwrite"):
        generate_keypair(os.path.dirname(keys[0]))
