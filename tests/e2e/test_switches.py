"""Against the real one-process server (serving app + monitor + controller on 127.0.0.1), with a
client predicting all along: the kill switch takes a version out of traffic within a second,
and an expired version is retired by the controller and unloaded by the server."""

from __future__ import annotations

import time

from tests.e2e import _loop as L


def test_kill_switch_takes_a_version_out_of_traffic_within_a_second(project, store, versions):
    champion, other = versions["champion"], versions["other"]
    store.endpoints.deploy(L.ENDPOINT, store.versions.get(other), actor="test", canary=50)
    with L.server(project) as (url, _app), L.Client(url, rows=1, rate=100) as client:
        L.wait_for(
            "answers from both versions",
            lambda: {a.version for a in client.answers[-40:]} >= {champion, other},
            30,
        )
        t0 = time.time()
        store.disable(other, actor="test", reason="e2e: kill switch")
        L.wait_for(
            "answers sent 1.5 s after the kill switch",
            lambda: any(a.sent > t0 + 1.5 for a in client.answers),
            30,
        )
    after = [a for a in client.answers if a.sent >= t0]
    last = max((a.sent for a in after if a.version == other), default=t0)
    print(
        f"kill switch: version {other} out of traffic {(last - t0) * 1000:.0f} ms after "
        f"store.disable ({len(after)} requests sent since)"
    )
    assert last - t0 <= 1.0
    assert {a.version for a in after if a.sent > last} == {champion}
    assert store.versions.get(other)["status"] == "disabled"
    assert not client.failures(), client.failures()[:3]


def test_expired_version_is_retired_by_the_controller_and_unloaded(project, store, versions):
    expiring = L.train_version(project, expire_after=1.0, C=0.5)
    store.endpoints.deploy(L.ENDPOINT, expiring, actor="test", shadow=True)
    vid = expiring["id"]
    L.wait_for("the version to expire", lambda: time.time() > expiring["expires_at"], 10)
    with L.server(project) as (url, app), L.Client(url, rows=1, rate=50) as client:
        watcher, pool = app.state.runtime.watcher, app.state.runtime.pool
        watcher.unload_delay = 0.5  # the server waits 5 s for in-flight requests by default
        assert vid in pool.loaded  # the server started with the shadow loaded
        retired = L.wait_for(
            "the controller to retire the expired version",
            lambda: store.decisions.list(
                subject=f"version:{vid}", action="status:retired", limit=1
            ),
            30,
        )[0]
        L.wait_for("the server to unload it", lambda: vid not in pool.loaded, 10)
        n = len(client.answers)
        L.wait_for("more answers", lambda: len(client.answers) > n + 20, 30)
    assert retired["actor"] == "controller" and retired["evidence"]["why"] == "expired"
    assert "expired" in retired["reason"]
    assert store.versions.get(vid)["status"] == "retired"  # kept in the registry, with history
    assert store.endpoints.get(L.ENDPOINT)["shadows"] == []
    alert = store.monitoring.open_alert("retirement", L.ENDPOINT, f"version:{vid}")
    assert alert is not None and "retired" in alert["message"]
    assert {a.version for a in client.answers} == {versions["champion"]}
    assert not client.failures(), client.failures()[:3]
