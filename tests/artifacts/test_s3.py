"""Artifacts on S3, tested against a real S3 API server on loopback (``tests/s3server.py``:
moto's server mode, a stand-in for AWS S3 or MinIO that speaks the same HTTP API), reached
through s3fs exactly as a real bucket would be (``AWS_ENDPOINT_URL``)."""

from __future__ import annotations

import fsspec
import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

from loopml.artifacts.store import ArtifactStore
from loopml.errors import IntegrityError, StorageError
from tests.s3server import BUCKET, FAIL_FAST, CuttingProxy, free_port


def test_put_and_get_on_s3_check_the_digest(s3):
    store = ArtifactStore(f"s3://{BUCKET}/proj/artifacts")
    data = b"model bytes" * 10_000
    digest = store.put_bytes(data, suffix=".skops")
    assert store.path_for(digest, ".skops").startswith(f"s3://{BUCKET}/proj/artifacts/sha256/")
    assert s3.cat_file(store.path_for(digest, ".skops")) == data  # really on the server
    assert store.get_bytes(digest) == data
    assert store.put_bytes(data, suffix=".skops") == digest  # idempotent
    with open(store.local_path(digest), "rb") as f:
        assert f.read() == data
    s3.pipe_file(store.path_for(digest, ".skops"), b"tampered" + data[8:])  # changed on S3
    with pytest.raises(IntegrityError, match="damaged or was changed"):
        store.get_bytes(digest)


def test_put_file_streams_a_large_file_through_multipart_upload(s3, tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * (12 << 20))  # s3fs uploads files over 5 MB in parts
    store = ArtifactStore(f"s3://{BUCKET}/big")
    digest = store.put_file(path, suffix=".bin")
    assert s3.size(store.path_for(digest, ".bin")) == 12 << 20
    assert store.get_digest_of(store.path_for(digest, ".bin")[5:]) == digest


def test_a_connection_cut_mid_upload_is_a_clear_error_and_leaves_no_object(s3, s3_url, monkeypatch):
    """Guards against a network error leaving a half-written artifact behind."""
    proxy = CuttingProxy(s3_url, limit=200_000)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setitem(fsspec.config.conf, "s3", FAIL_FAST)
    data = bytes(range(256)) * 8_000  # 2 MB: the body is cut at 200 kB
    store = ArtifactStore(f"s3://{BUCKET}/cut")
    with pytest.raises(StorageError, match="Could not write s3://loopml-test/cut/sha256/") as err:
        store.put_bytes(data, suffix=".skops")
    assert "AWS_ENDPOINT_URL" in err.value.message
    assert proxy.cut >= 1, err.value.message
    proxy.close()
    s3.invalidate_cache()
    assert s3.find(f"{BUCKET}/cut") == []  # nothing, not a truncated object


def test_an_unreachable_store_is_a_clear_error_on_read(s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setitem(fsspec.config.conf, "s3", FAIL_FAST)
    store = ArtifactStore(f"s3://{BUCKET}/gone")
    with pytest.raises(StorageError, match="Could not list s3://loopml-test/gone/sha256/"):
        store.get_bytes("ab" * 32)


def test_a_signed_version_trained_served_and_batch_scored_on_s3(s3, tmp_path):
    """``loopml run`` stores the model and its reference on S3; loading checks digest and
    Ed25519 signature as on a local disk; ``loopml score`` reads its input from S3 and
    writes its output there."""
    import pandas as pd
    import pyarrow.parquet as pq

    from loopml.artifacts import generate_keypair
    from loopml.artifacts.model_loader import load_version
    from loopml.cli import main
    from loopml.errors import SignatureError

    from ..conftest import CONFIG, make_project, run_project, synthetic_frame

    private, public = generate_keypair(tmp_path / "keys")
    root = make_project(
        tmp_path / "proj",
        config=CONFIG
        + f"artifacts: s3://{BUCKET}/proj\n"
        + f"security: {{private_key: {private}, public_key: {public}}}\n",
    )
    cfg, store, result = run_project(root)
    version = store.versions.get(result.version["id"])
    assert s3.exists(f"{BUCKET}/proj/sha256/{version['artifact'][:2]}")
    arts = ArtifactStore(cfg.artifacts_root)
    model = load_version(arts, version, public_key=str(public))
    forged = {**version, "manifest": {**version["manifest"], "metrics": {"auc": 1.0}}}
    with pytest.raises(SignatureError):
        load_version(arts, forged, public_key=str(public))

    store.endpoints.deploy("tiny", version, actor="test")
    rows = synthetic_frame(500, seed=3).drop(columns=["label"])
    s3.pipe_file(f"{BUCKET}/in/rows.parquet", rows.to_parquet(index=False))
    out = f"s3://{BUCKET}/out/scored"
    code = main(
        [
            "-c",
            str(root),
            "score",
            "tiny",
            "--input",
            f"s3://{BUCKET}/in/rows.parquet",
            "--output",
            out,
            "--chunk-rows",
            "200",
            "--json",
        ]
    )
    assert code == 0
    with s3.open(f"{BUCKET}/out/scored/part-000000.parquet", "rb") as f:
        first = pq.read_table(f).to_pandas()
    assert sorted(p.rsplit("/", 1)[-1] for p in s3.ls(f"{BUCKET}/out/scored")) == [
        "_loopml_score.json",
        "part-000000.parquet",
    ]
    X = rows[[c["name"] for c in version["signature"]["columns"]]]
    pd.testing.assert_series_equal(
        first["prediction"], pd.Series(model.predict(X), name="prediction"), check_dtype=False
    )
