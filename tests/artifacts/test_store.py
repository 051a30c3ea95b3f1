"""ArtifactStore: content addressing, atomic idempotent writes, verified reads."""

from __future__ import annotations

import hashlib
import os

import pytest

from loopml.artifacts import ArtifactStore
from loopml.errors import IntegrityError, NotFoundError, UsageError


def test_put_get_round_trip_and_layout(tmp_path):
    store = ArtifactStore(str(tmp_path / "art"))
    data = b"model bytes"
    digest = store.put_bytes(data, suffix=".skops")
    assert digest == hashlib.sha256(data).hexdigest()
    path = store.path_for(digest, ".skops")
    assert path == f"{tmp_path}/art/sha256/{digest[:2]}/{digest[2:4]}/{digest}.skops"
    assert os.path.exists(path) and store.exists(digest)
    assert store.get_bytes(digest) == data
    with store.open_verified(digest) as f:
        assert f.read() == data
    # no temp files are left behind by the atomic write
    assert os.listdir(os.path.dirname(path)) == [f"{digest}.skops"]


def test_put_is_idempotent_and_put_file_streams_the_same_digest(tmp_path):
    store = ArtifactStore(str(tmp_path))
    data = os.urandom(3 << 20)  # larger than one read chunk
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    d1 = store.put_file(src, suffix=".bin")
    d2 = store.put_bytes(data, suffix=".bin")
    assert d1 == d2 == hashlib.sha256(data).hexdigest()
    assert store.get_bytes(d1) == data


def test_tampered_artifact_is_refused_naming_both_digests_and_the_path(tmp_path):
    store = ArtifactStore(str(tmp_path))
    digest = store.put_bytes(b"the registered model", suffix=".skops")
    path = store.path_for(digest, ".skops")
    os.chmod(path, 0o644)
    with open(path, "wb") as f:
        f.write(b"the attacker's model")
    actual = hashlib.sha256(b"the attacker's model").hexdigest()
    for read in (store.get_bytes, store.local_path):
        with pytest.raises(IntegrityError) as err:
            read(digest)
        msg = str(err.value)
        assert digest in msg and actual in msg and path in msg
        assert "re-register" in msg  # says what to do
        assert err.value.details["expected"] == digest and err.value.details["actual"] == actual


def test_missing_and_malformed_digests(tmp_path):
    store = ArtifactStore(str(tmp_path))
    with pytest.raises(NotFoundError, match="No artifact with sha256"):
        store.get_bytes("0" * 64)
    assert not store.exists("0" * 64)
    with pytest.raises(UsageError, match="64 lowercase hex"):
        store.get_bytes("../../etc/passwd")
    with pytest.raises(UsageError, match="suffix"):
        store.put_bytes(b"x", suffix="/../../x")


def test_subpath_for_other_layers(tmp_path):
    store = ArtifactStore(str(tmp_path))
    assert store.subpath("predlog", "ep1") == f"{tmp_path}/predlog/ep1"
    with pytest.raises(UsageError):
        store.subpath("..", "x")


def test_fsspec_non_local_root_round_trip_and_tamper():
    """The same API over a non-local fsspec filesystem (memory://, standing in for s3://)."""
    store = ArtifactStore("memory://loopml-test-store")
    digest = store.put_bytes(b"remote bytes", suffix=".onnx")
    assert store.path_for(digest, ".onnx").startswith("memory://")
    assert store.get_bytes(digest) == b"remote bytes"
    with open(store.local_path(digest), "rb") as f:
        assert f.read() == b"remote bytes"
    store.fs.pipe_file(store._key(digest, ".onnx"), b"changed")
    with pytest.raises(IntegrityError, match=digest):
        store.get_bytes(digest)
