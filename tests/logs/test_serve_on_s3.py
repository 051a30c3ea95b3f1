"""``loopml serve``, ``loopml monitor`` and the controller on an S3 log root (the S3 API server
of ``tests/s3server.py``, a stand-in for AWS S3): real processes, real HTTP.

- The server answers and takes labels; its segments stay in the local spool and are uploaded
  as Parquet parts; the controller (inside ``loopml serve``) rolls a bad canary back on the
  rows and labels it reads from the log; ``loopml monitor``, run with the spool moved away,
  sees the server's predictions and labels from S3 alone.
- ``kill -9`` of the server after an upload reached S3 and before the segment was removed (the
  upload's answer held in a proxy) neither loses nor duplicates a record: the restarted server
  uploads the segment again under the same part name, replacing the first copy.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pytest

from loopml.logs.layout import LogLocation, segment_of
from loopml.logs.logreader import read_labels, read_log
from loopml.server import free_port
from tests._helpers.process import children, ended
from tests.e2e import _loop as L
from tests.replicas import _cluster as C
from tests.s3server import BUCKET, HoldingProxy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
ROOT = f"s3://{BUCKET}/proj"


def _project(tmp_path: Path, config: str) -> Path:
    root = L.write_project(tmp_path / "proj", f"artifacts: {ROOT}\n" + config)
    v1 = L.train_version(root, data="data/train.parquet")
    C.deploy(root, v1["id"])
    return root


def _serve(root: Path, endpoint_url: str | None = None) -> C.Replica:
    """``loopml serve`` as a child process (optionally reaching S3 through another URL)."""
    env = C._env()
    if endpoint_url is not None:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    port = free_port()
    log = root.parent / f"serve-{port}.log"
    proc = subprocess.Popen(
        [C.LOOPML, "serve", "-c", str(root), "--host", "127.0.0.1", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    replica = C.Replica(proc, f"http://127.0.0.1:{port}", log)
    C.wait_ready([replica])
    return replica


def _stop(r: C.Replica) -> None:
    """SIGTERM: a graceful stop, which compacts what is left (uvicorn re-raises the signal
    once it has shut down, hence -15)."""
    r.proc.send_signal(signal.SIGTERM)
    assert r.proc.wait(60) in (0, -signal.SIGTERM), r.log.read_text(errors="replace")[-3000:]


def _spool(root: Path) -> Path:
    return root / ".loopml" / "spool"


def _open_segments(root: Path) -> list[Path]:
    return sorted(_spool(root).glob("*/_wal/*.wal"))


def test_serve_monitor_and_controller_share_the_log_on_s3(s3, tmp_path):
    config = (
        L.config_text(recent="0s")
        .replace("train: data/train.parquet", "train: data/flipped.parquet")
        .replace("schedule: 1s", "schedule: 1h")  # the CLI's pass below is the only one
    )
    root = _project(tmp_path, config)
    from loopml.config import load_config
    from loopml.control import request_retrain
    from loopml.store import Store

    store = Store(load_config(root).store_url)
    server = _serve(root)
    try:
        with L.Client(server.url) as client:
            client.hold_labels = True
            request_retrain(store, L.ENDPOINT, actor="test", reason="S3 log: a bad candidate")
            L.wait_for(
                "the candidate to reach the canary",
                lambda: [d for d in L.actions(store) if d["action"] == "canary"],
                120,
                state=lambda: [d["action"] for d in L.actions(store)],
            )
            client.hold_labels = False
            L.wait_for(
                "the controller to judge the canary on the log's rows and labels",
                lambda: [d for d in L.actions(store) if d["action"] in ("rollback", "promote")],
                120,
                state=lambda: [d["action"] for d in L.actions(store)],
            )
        assert not client.failures(), client.failures()[:3]
    finally:
        _stop(server)
    rollback = next(d for d in L.actions(store) if d["action"] in ("rollback", "promote"))
    assert rollback["action"] == "rollback", [d["action"] for d in L.actions(store)]
    assert rollback["evidence"]["quality"]["requests"] >= 30
    # nothing left on local disk: every segment was uploaded; the parts are on S3
    assert _open_segments(root) == []
    s3.invalidate_cache()
    parts = s3.find(f"{BUCKET}/proj/predlog") + s3.find(f"{BUCKET}/proj/labels")
    assert parts and all("--" in p.rsplit("/", 1)[-1] for p in parts)
    shutil.move(_spool(root), tmp_path / "spool-aside")  # the monitor cannot read it
    answered = sum(a.status == 200 for a in client.answers)
    out = json.loads(C.cli(root, "monitor", "--json"))
    assert out["endpoints"][L.ENDPOINT]["computed"] >= 1, out
    series = store.monitoring.series(L.ENDPOINT)
    assert sum(w["rows"] for w in series) > 0 and sum(w["labels"] for w in series) > 0, series
    logged = read_log(LogLocation(ROOT), L.ENDPOINT)
    roles = logged.column("_role").to_numpy(zero_copy_only=False)
    served = logged.filter(pa.array(np.isin(roles, ["champion", "canary"])))
    assert served.num_rows == answered * client.rows  # every answered row, once
    store.close()


def _post(url: str, n: int, rng: np.random.Generator) -> list[str]:
    ids: list[str] = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for _ in range(n):
            rows = L.features(5, rng).to_dict("records")
            r = c.post(f"/v1/endpoints/{L.ENDPOINT}/predict", json={"rows": rows})
            assert r.status_code == 200, r.text
            ids += r.json()["request_ids"]
        labels = [{"request_id": i, "label": 1} for i in ids]
        r = c.post("/v1/labels", json={"labels": labels})
        assert r.status_code == 200 and r.json()["accepted"] == len(ids), r.text
    return ids


def test_kill_9_between_upload_and_segment_removal_loses_and_duplicates_nothing(
    s3, s3_url, tmp_path
):
    root = _project(tmp_path, L.config_text().replace("schedule: 1s", "schedule: 1h"))
    proxy = HoldingProxy(s3_url)
    rng = np.random.default_rng(0)
    server = _serve(root, proxy.url)
    ids = _post(server.url, 20, rng)
    L.wait_for(
        "the first requests' parts on S3",
        lambda: set(ids) <= set(read_log(LogLocation(ROOT)).column("_request_id").to_pylist()),
        30,
    )
    proxy.hold()  # uploads reach S3; their answers wait here
    ids += _post(server.url, 20, rng)

    def uploaded_not_removed() -> list[Path]:
        s3.invalidate_cache()
        found = s3.find(f"{BUCKET}/proj/predlog") + s3.find(f"{BUCKET}/proj/labels")
        on_s3 = {segment_of(p) for p in found}
        return [p for p in _open_segments(root) if p.stem in on_s3]

    caught = L.wait_for(
        "an upload to reach S3 while its segment is kept",
        uploaded_not_removed,
        30,
        state=lambda: (
            [p.name for p in _open_segments(root)],
            s3.find(f"{BUCKET}/proj/predlog"),
            server.log.read_text(errors="replace")[-2000:],
        ),
    )
    # the compaction worker and the background process (multiprocessing's, not its tracker)
    workers = children(server.pid, b"spawn_main")
    assert workers
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    # the crash left parts on S3 whose segments are still in the spool, not marked done
    assert all(not p.with_suffix(".done").exists() and p.exists() for p in caught)
    # they end within 0.5 s of their parent (exit_with_parent), before any held upload's answer
    L.wait_for("the server's children to end", lambda: all(map(ended, workers)), 30)
    proxy.release()
    # right after the crash: the local reader takes those rows from the segment, a reader
    # elsewhere from the part; neither sees a row twice
    here = LogLocation(ROOT, str(_spool(root)))
    for where in (here, LogLocation(ROOT)):
        got = Counter(read_log(where, L.ENDPOINT).column("_request_id").to_pylist())
        assert max(got.values()) == 1
    assert set(ids) <= set(read_log(here, L.ENDPOINT).column("_request_id").to_pylist())
    # the restarted server uploads the kept segments again (same names) and removes them
    _stop(_serve(root))
    assert _open_segments(root) == []
    everywhere = LogLocation(ROOT)
    logged = read_log(everywhere, L.ENDPOINT).column("_request_id").to_pylist()
    assert sorted(logged) == sorted(ids)  # nothing lost, nothing twice
    labelled = read_labels(everywhere, L.ENDPOINT).column("_request_id").to_pylist()
    assert sorted(labelled) == sorted(ids)
    proxy.close()
