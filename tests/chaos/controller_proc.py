"""A controller in its own process, for the chaos tests: ``python controller_proc.py ROOT
STORE_URL HOLDER CLOCK_FILE TTL``. It runs a pass every 0.2 s on the virtual clock the test
writes to CLOCK_FILE, and appends one JSON line per change of leadership, decision or error to
ROOT/HOLDER.log. TTL shortens the SQLite lease so a takeover takes seconds, not minutes."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> None:
    root, url, holder, clock_file, ttl = sys.argv[1:6]
    from loopml.control import Controller
    from loopml.store import Store
    from tests.control._log import make_config

    cfg = make_config(Path(root), url)
    store = Store(url)

    def clock() -> float:
        return float(Path(clock_file).read_text())

    ctl = Controller(cfg, store, holder=holder, clock=clock)
    ctl.leadership.ttl = float(ttl)
    out = open(Path(root) / f"{holder}.log", "a", buffering=1)  # noqa: SIM115 - until killed
    leading = None
    while True:
        try:
            ds = ctl.reconcile_once()
        except Exception as exc:  # the next pass retries, as run_forever does
            out.write(json.dumps({"t": time.time(), "error": repr(exc)[:300]}) + "\n")
            ds = []
        now = ctl.leadership.holds()
        if ds or now != leading:
            leading = now
            line = {"t": time.time(), "leading": now, "actions": [d["action"] for d in ds]}
            out.write(json.dumps(line) + "\n")
        time.sleep(0.2)


if __name__ == "__main__":
    main()
