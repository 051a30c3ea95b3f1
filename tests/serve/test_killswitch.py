"""The kill switch stays off (issue 13 item 6): after 'disable', promote, deploy and rollback
refuse the version, predictions answer 503 naming who disabled it, readiness is false, and
only 'enable' (admin) brings it back; each step is in the decisions log."""

from __future__ import annotations

import pytest
import serve_helpers as h

from loopml.cli import main

pytestmark = pytest.mark.anyio


def cli(project, *args):
    return main(["--config", str(project), *args])


async def test_kill_switch_stays_off_until_enabled(
    settings, keys, versions, store, project, capsys
):
    champ, spare = versions["champion"], versions["spare"]
    deployer, admin = h.bearer(keys["deployer"]), h.bearer(keys["admin"])
    body = {"rows": [h.row(1)]}
    async with h.serving(settings) as (_app, c):
        r = await c.post(
            "/v1/endpoints/credit/predict", json=body, headers=h.bearer(keys["predictor"])
        )
        assert r.status_code == 200
        r = await c.post(
            f"/v1/versions/{champ}/disable", json={"reason": "leaks labels"}, headers=deployer
        )
        assert r.status_code == 200, r.text

        r = await c.post(
            "/v1/endpoints/credit/predict", json=body, headers=h.bearer(keys["predictor"])
        )
        assert r.status_code == 503
        msg = r.json()["error"]
        assert f"version {champ} was disabled at " in msg and "leaks labels" in msg
        assert "key:" in msg  # the actor: the deployer's key
        assert (await c.get("/v2/models/credit/ready", headers=deployer)).status_code == 503
        assert (await c.get("/v2/health/ready")).status_code == 503

        # every way back but 'enable' is refused
        for path, doc in (
            ("/v1/endpoints/credit/promote", {"version": champ}),
            ("/v1/endpoints/credit/deploy", {"version": champ}),
            ("/v1/endpoints/credit/deploy", {"version": champ, "shadow": True}),
        ):
            r = await c.post(path, json=doc, headers=deployer)
            assert r.status_code == 409, (path, r.text)
            assert "was disabled at" in r.json()["error"] and "loopml enable" in r.json()["error"]
        assert cli(project, "promote", "credit", str(champ)) == 1
        assert cli(project, "deploy", "credit", str(champ)) == 1
        err = capsys.readouterr().err
        assert "leaks labels" in err and "Traceback" not in err
        assert (await c.post(f"/v1/versions/{champ}/enable", headers=deployer)).status_code == 403

        r = await c.post(
            f"/v1/versions/{champ}/enable", json={"reason": "false alarm"}, headers=admin
        )
        assert r.status_code == 200 and r.json()["status"] == "candidate"
        r = await c.post("/v1/endpoints/credit/deploy", json={"version": champ}, headers=deployer)
        assert r.status_code == 200, r.text
        r = await c.post(
            "/v1/endpoints/credit/predict", json=body, headers=h.bearer(keys["predictor"])
        )
        assert r.status_code == 200 and r.json()["model_version"] == champ
        assert (await c.get("/v2/health/ready")).status_code == 200
    actions = [d["action"] for d in store.decisions.list(limit=50)][::-1]
    tail = actions[actions.index("status:disabled") :]
    assert tail[:2] == ["status:disabled", "disable"]
    assert "status:candidate" in tail and "enable" in tail
    assert tail.index("enable") < tail.index("deploy")
    # a version never disabled is not "enabled"
    assert cli(project, "enable", str(spare)) == 2


async def test_promote_falls_back_refusal_and_rollback(versions, store, project, capsys):
    """Rollback to a disabled earlier champion is refused too; unknown versions are 'not found'."""
    champ, spare = versions["champion"], versions["spare"]
    assert cli(project, "promote", "credit", str(spare)) == 0
    assert cli(project, "disable", str(champ)) == 0  # the previous champion
    assert cli(project, "rollback", "credit") == 1
    assert "was disabled at" in capsys.readouterr().err
    assert store.endpoints.get("credit")["champion_id"] == spare
    assert cli(project, "promote", "credit", "99") == 2
    err = capsys.readouterr().err
    assert "No model version 99" in err and "Traceback" not in err and "sqlalchemy" not in err
    assert cli(project, "enable", str(champ)) == 0
    assert cli(project, "rollback", "credit") == 0
    assert store.endpoints.get("credit")["champion_id"] == champ


async def test_ids_beyond_64_bits_are_not_found(settings, keys):
    """issue 14 item 6: these answered 500 (SQLite OverflowError)."""
    big = "9" * 30
    auth = h.bearer(keys["admin"])
    async with h.serving(settings) as (_app, c):
        for method, path, doc in (
            ("GET", f"/v1/versions/{big}", None),
            ("POST", f"/v1/versions/{big}/disable", {}),
            ("POST", f"/v1/versions/{big}/enable", {}),
            ("POST", "/v1/endpoints/credit/deploy", {"version": big}),
            ("POST", "/v1/endpoints/credit/promote", {"version": str(2**64)}),
        ):
            r = await c.request(method, path, json=doc, headers=auth)
            assert r.status_code == 404, (path, r.text)
            assert r.json()["field"] == "version" and len(r.text) < 400
        # a JSON number beyond 64 bits is read as a float: not an id
        r = await c.post("/v1/endpoints/credit/promote", json={"version": int(big)}, headers=auth)
        assert r.status_code == 422 and r.json()["field"] == "version"
