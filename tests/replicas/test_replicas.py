"""Three real ``loopml serve`` processes on loopback sharing one Postgres database and one
artifacts folder, behind Debian's nginx, with a client predicting and labelling through nginx
all along: a canary deploy and a rollback with 0 failed requests, and the kill switch
(``loopml disable V``) reaching every replica within 1 s, measured by polling each replica
directly."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.e2e import _loop as L
from tests.replicas import _cluster as C

# three servers on a shared 2-core machine beside the rest of the suite: more than the
# suite's 300 s per test may be needed when the box is busy
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def root(tmp_path: Path):
    with C.fresh_database() as url:
        yield C.project(tmp_path / "proj", url, tmp_path / "artifacts", L.config_text())


def _serving(replicas: list[C.Replica], row: dict, want: int, timeout: float = 30) -> None:
    with httpx.Client(timeout=5) as c:
        for r in replicas:
            L.wait_for(
                f"replica {r.url} to answer with version {want}",
                lambda r=r: C.predict_version(r.url, c, row) == want,
                timeout,
                state=lambda r=r: (
                    f"it answers version {C.predict_version(r.url, c, row)}; the end of its "
                    "log:\n" + r.log.read_text(errors="replace")[-3000:]
                ),
            )


def _first_fallback(url: str, row: dict, want: int, stop: threading.Event, out: dict) -> None:
    """Poll one replica until it answers with ``want``; record when (wall clock)."""
    with httpx.Client(timeout=5) as c:
        while not stop.is_set():
            if C.predict_version(url, c, row) == want:
                out[url] = time.time()
                return


def test_canary_rollback_and_kill_switch_across_three_replicas(root: Path):
    v1 = L.train_version(root)["id"]
    v2 = L.train_version(root, C=0.05)["id"]
    C.cli(root, "deploy", L.ENDPOINT, str(v1))
    row = L.features(1, np.random.default_rng(7)).to_dict("records")[0]
    with C.cluster(root, 3) as (url, replicas), L.Client(url, rows=1, rate=40) as client:
        # canary: half the traffic to v2, on every replica
        C.cli(root, "deploy", L.ENDPOINT, str(v2), "--canary", "50")
        L.wait_for(
            "answers from both versions through nginx",
            lambda: {a.version for a in client.answers[-60:]} >= {v1, v2},
            30,
        )
        # rollback: v2 leaves; nothing but v1 is answered once every replica has seen it
        C.cli(root, "rollback", L.ENDPOINT)
        back = time.time()
        L.wait_for("answers 2 s after the rollback", lambda: client.answers[-1].sent > back + 2, 30)
        late = {a.version for a in client.answers if a.sent > back + 1.0}
        assert late == {v1}, late
        # v2 as champion (v1 kept warm as the previous one), then the kill switch on v2
        C.cli(root, "deploy", L.ENDPOINT, str(v2))
        _serving(replicas, row, v2)
        stop, seen = threading.Event(), {}
        pollers = [
            threading.Thread(target=_first_fallback, args=(r.url, row, v1, stop, seen))
            for r in replicas
        ]
        started = time.time()
        for t in pollers:
            t.start()
        C.cli(root, "disable", str(v2), "--reason", "replicas test: kill switch")
        for t in pollers:
            t.join(10)
        stop.set()
        from loopml.config import load_config
        from loopml.store import Store

        store = Store(load_config(root).store_url)
        try:
            disabled_at = store.decisions.list(endpoint=L.ENDPOINT, action="disable", limit=1)[0][
                "at"
            ]
        finally:
            store.close()
        n = len(client.answers)
        L.wait_for("answers after the kill switch", lambda: len(client.answers) > n + 20, 30)
    lags = {u: seen[u] - disabled_at for u in seen}
    print(
        "\nkill switch: 'loopml disable' committed "
        f"{disabled_at - started:.2f} s after the CLI started; every replica answered with the "
        "fallback version after: "
        + ", ".join(f"{u} {lag * 1000:.0f} ms" for u, lag in sorted(lags.items()))
        + f"; {len(client.answers)} requests and {len(client.label_answers)} label posts "
        f"through nginx, {len(client.failures())} failed"
    )
    assert set(seen) == {r.url for r in replicas}, f"replicas never fell back: {seen}"
    assert max(lags.values()) <= 1.0, lags
    assert not client.failures(), client.failures()[:3]
