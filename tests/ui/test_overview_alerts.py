"""The overview judges an endpoint by the alerts of what serves now; alerts of versions that
no longer serve are counted apart, not shown as the endpoint's health."""

from __future__ import annotations

from loopml.ui.pages.overview import health, serving_alerts

ROW = {"champion_id": 3, "canary_id": 4, "shadows": [{"version_id": 5, "fraction": 1.0}]}


def _alert(subject: str, severity: str = "critical") -> dict:
    return {"subject": subject, "severity": severity}


def test_alerts_of_versions_no_longer_serving_are_set_apart():
    """Guards against the overview listing alerts of a champion replaced long ago."""
    alerts = [
        _alert("version:1/champion"),  # the first champion, retired since
        _alert("version:3/champion", "warning"),
        _alert("version:4/canary", "warning"),
        _alert("version:5/shadow", "warning"),
        _alert("endpoint", "warning"),  # not about a version: always the endpoint's
    ]
    now, old = serving_alerts(ROW, alerts)
    assert [a["subject"] for a in old] == ["version:1/champion"]
    assert len(now) == 4
    assert health(ROW, now)[0] == "warning"  # not "critical" from the old champion


def test_an_endpoint_the_store_does_not_know_keeps_every_alert():
    alerts = [_alert("version:1/champion")]
    assert serving_alerts(None, alerts) == (alerts, [])
