"""With ``security.public_key`` configured the monitor compares a window only with a verified
version's reference: an unsigned or wrongly signed version is a finding of its windows (named
in the window's notes and in the pass's summary), never a crash, and other windows go on."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import update

from loopml.artifacts.signing import generate_keypair, sign_manifest
from loopml.monitor import run_monitor
from loopml.monitor.jobs import Pass
from loopml.monitor.queries import timeseries, window_detail
from loopml.store import Store
from loopml.store.tables import versions as versions_table

from ._log import T0, make_config, register, write_predictions


def _sign(store: Store, vid: int, private_key: str) -> None:
    sig = sign_manifest(store.versions.get(vid)["manifest"], private_key)
    with store.engine.begin() as conn:
        conn.execute(
            update(versions_table).where(versions_table.c.id == vid).values(manifest_signature=sig)
        )


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(rng.normal(size=(n, 3)), columns=["x0", "x1", "x2"]).assign(
        g=rng.choice(["a", "b"], size=n)
    )


def test_unsigned_and_wrongly_signed_versions_are_findings_not_references(tmp_path):
    rng = np.random.default_rng(0)
    cfg = make_config(tmp_path, f"sqlite:///{tmp_path / 'loopml.db'}")
    store = Store(cfg.store_url)
    priv, pub = generate_keypair(tmp_path / "k")
    other, _ = generate_keypair(tmp_path / "other")
    cfg.security.public_key = pub
    train = _frame(rng, 2000)
    pred = (train["x0"] > 0).astype(int).to_numpy()
    versions = {}
    for name in ("signed", "unsigned", "foreign"):
        versions[name] = register(
            store, cfg, train.assign(y=pred), pred, pred.astype(float), metrics={}
        )["id"]
    _sign(store, versions["signed"], priv)
    _sign(store, versions["foreign"], other)
    for hour, name in enumerate(("signed", "unsigned", "foreign")):
        frame = _frame(rng, 500)
        write_predictions(
            cfg.artifacts_root,
            "ep",
            frame,
            version=versions[name],
            prediction=(frame["x0"] > 0).astype(int).to_numpy(),
            ts=T0 + hour * 3600 + rng.uniform(0, 3600, len(frame)),
        )
    summary = run_monitor(cfg, store, now=T0 + 3 * 3600)
    res = summary["endpoints"]["ep"]
    assert res["computed"] == 3  # every window computed, the refused ones too
    refused = res["refused_references"]
    assert len(refused) == 2, refused
    assert any(f"version {versions['unsigned']}" in r and "not signed" in r for r in refused)
    assert any(f"version {versions['foreign']}" in r and "does not match" in r for r in refused)
    series = timeseries(store, "ep")
    details = [window_detail(store, i)["results"] for i in series["id"]]
    ok, unsigned, foreign = details
    assert "drift" in ok and ok["reference"]["profile"] and "refused" not in ok["reference"]
    for d in (unsigned, foreign):
        assert "drift" not in d and d["reference"]["profile"] is None
        assert d["reference"]["refused"] and "was refused" in d["notes"][0]
    assert series["rows"] == [500, 500, 500]  # nothing lost: the rows are still counted
    # without a public key the same versions are references again (the check is opt-in)
    cfg.security.public_key = None
    assert Pass(cfg, store).ref_of(versions["unsigned"]) is not None
