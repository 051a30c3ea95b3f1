"""Signed manifests end to end: with a public key configured, a version that is unsigned,
signed with another key, or whose registry row was altered after signing is refused wherever
it is loaded (the server, retraining's champion comparison, the reference profile check)."""

from __future__ import annotations

import dataclasses

import pytest
import serve_helpers as h
from sqlalchemy import update

from loopml.artifacts.model_loader import verify_version
from loopml.artifacts.signing import generate_keypair, sign_manifest
from loopml.errors import IntegrityError, SignatureError
from loopml.store.tables import versions as versions_table

pytestmark = pytest.mark.anyio


def _sign(store, vid: int, private_key: str) -> None:
    row = store.versions.get(vid)
    sig = sign_manifest(row["manifest"], private_key)
    with store.engine.begin() as conn:
        conn.execute(
            update(versions_table).where(versions_table.c.id == vid).values(manifest_signature=sig)
        )


async def test_the_server_serves_signed_versions_and_refuses_the_others(
    settings, store, keys, versions, tmp_path
):
    priv, pub = generate_keypair(tmp_path / "k")
    other_priv, _ = generate_keypair(tmp_path / "other")
    secured = dataclasses.replace(settings, public_key=pub)
    body = {"rows": [h.row(0)]}
    auth = h.bearer(keys["admin"])
    # unsigned champion: not loaded, not ready, 503 saying why
    async with h.serving(secured) as (_, c):
        r = await c.post("/v1/endpoints/credit/predict", json=body, headers=auth)
        assert r.status_code == 503 and "not signed" in r.json()["error"], r.text
        assert (await c.get("/v2/health/ready")).status_code == 503
    # signed with another key: refused
    _sign(store, versions["champion"], other_priv)
    async with h.serving(secured) as (_, c):
        r = await c.post("/v1/endpoints/credit/predict", json=body, headers=auth)
        assert r.status_code == 503 and "does not match" in r.json()["error"], r.text
    # signed with the configured key: served
    _sign(store, versions["champion"], priv)
    async with h.serving(secured) as (_, c):
        r = await c.post("/v1/endpoints/credit/predict", json=body, headers=auth)
        assert r.status_code == 200, r.text
    # the registry row altered after signing (another reference profile): refused
    with store.engine.begin() as conn:
        conn.execute(
            update(versions_table)
            .where(versions_table.c.id == versions["champion"])
            .values(reference_profile="0" * 64)
        )
    async with h.serving(secured) as (_, c):
        r = await c.post("/v1/endpoints/credit/predict", json=body, headers=auth)
        assert r.status_code == 503 and "disagree" in r.json()["error"], r.text


def test_retraining_compares_only_with_a_verified_champion(project, store, versions, tmp_path):
    from loopml.artifacts.store import ArtifactStore
    from loopml.config import load_config
    from loopml.train.gating import champion_model

    priv, pub = generate_keypair(tmp_path / "k")
    cfg = load_config(project)
    cfg.security.public_key = pub
    art = ArtifactStore(cfg.artifacts_root)
    model, row, why = champion_model(cfg, store, art)
    assert model is None and row["id"] == versions["champion"]  # unsigned: not used
    assert "sign" in why  # and the champion gate fails closed, naming why
    _sign(store, versions["champion"], priv)
    model, _, why = champion_model(cfg, store, art)
    assert model is not None and why is None


def test_verify_version_names_what_disagrees(store, versions, tmp_path):
    priv, pub = generate_keypair(tmp_path / "k")
    _sign(store, versions["champion"], priv)
    row = store.versions.get(versions["champion"])
    verify_version(row, pub)
    for column in ("reference_profile", "format", "model"):
        with pytest.raises(IntegrityError, match=column):
            verify_version({**row, column: "altered"}, pub)
    with pytest.raises(SignatureError):
        verify_version({**row, "manifest": {**row["manifest"], "data": {}}}, pub)
    with pytest.raises(SignatureError, match="not signed"):
        verify_version({**row, "manifest_signature": None}, pub)
