"""What the demo prints while it runs: one line per survey month (traffic split, the
champion's latest monitored month) and every new controller decision or monitor alert."""

from __future__ import annotations

from typing import Any


class Narrator:
    """Prints each month's numbers and every new controller/monitor event as it happens."""

    def __init__(
        self, console: Any, store: Any, ranges: dict[str, tuple[float, float]] | None = None
    ) -> None:
        self.console, self.store = console, store
        self.ranges = ranges or {}  # each numeric input's [min, max] in the training data
        self.seen_decision = max((d["id"] for d in store.decisions.list(limit=1)), default=0)
        self.seen_alerts: set[int] = set()
        self.seen_reasons: set[str] = set()
        self.sent_at: list[tuple[float, tuple[int, int]]] = []

    def month_of(self, start: float, end: float) -> str:
        """Which survey month was sent during a monitor window."""
        got = [ym for t, ym in self.sent_at if start <= t < end]
        return f"{got[0][0]}-{got[0][1]:02d}" if got else "?"

    def events(self) -> None:
        from loopml.monitor.queries import open_alerts

        for d in reversed(self.store.decisions.list(limit=200)):
            if d["id"] <= self.seen_decision:
                continue
            self.seen_decision = d["id"]
            if d["action"].startswith("status:") or d["action"] in ("register",):
                continue
            if d["action"] == "trigger-suppressed":  # said once per kind, not every pass
                kind = d["evidence"].get("suppressed", "")
                if kind in self.seen_reasons:
                    continue
                self.seen_reasons.add(kind)
            colour = {"rollback": "red", "retrain": "yellow", "promote": "green"}.get(
                d["action"].split("-")[0], "cyan"
            )
            self.console.print(f"      [{colour}]▶ {d['actor']} · {d['action']}[/]: {d['reason']}")
        for a in open_alerts(self.store, endpoint="employment"):
            if a["id"] not in self.seen_alerts:
                self.seen_alerts.add(a["id"])
                self.console.print(
                    f"      [magenta]⚑ alert {a['rule']} ({a['severity']})[/]: {a['message']}"
                )
                if a["on"] == "quality":
                    self._findings()

    def _findings(self) -> None:
        """The error findings behind a data-quality alert, with their evidence."""
        rows = [
            w
            for w in self.store.monitoring.series("employment", role="champion")
            if w["quality_errors"]
        ]
        if not rows:
            return
        results = self.store.monitoring.window(rows[-1]["id"])["results"]
        found = results.get("quality")
        found = found.get("findings", []) if isinstance(found, dict) else (found or [])
        for f in found:
            if f.get("severity") == "error":
                seen = self.ranges.get(f.get("column") or "")
                note = (
                    f" (the range check allows a margin; training saw {seen[0]:g} to {seen[1]:g})"
                    if f["check"] == "out_of_range" and seen
                    else ""
                )
                self.console.print(
                    f"        [magenta]{f['check']} {f.get('column') or ''}:[/] {f['message']}{note}"
                )

    def month(self, ym: tuple[int, int], sent: int, note: str = "") -> None:
        ep = self.store.endpoints.get("employment")
        split = f"v{ep['champion_id']}"
        if ep["canary_id"]:
            split += f" + canary v{ep['canary_id']} {ep['canary_weight']:g}%"
        if ep["shadows"]:
            split += " + shadow " + ",".join(f"v{s['version_id']}" for s in ep["shadows"])
        rows = self.store.monitoring.series("employment", role="champion", limit=4)  # oldest first
        done = [r for r in rows if r["labels"]]
        last = done[-1] if done else (rows[-1] if rows else None)
        when = self.month_of(last["start"], last["end"]) if last else "       "
        acc = f"{last['accuracy']:.3f}" if last and last["accuracy"] is not None else "  -  "
        est = (
            f"{last['estimated_accuracy']:.3f}"
            if last and last["estimated_accuracy"] is not None
            else "  -  "
        )
        drift = f"{last['drift_score']:.2f}" if last and last["drift_score"] is not None else " - "
        self.console.print(
            f"  {ym[0]}-{ym[1]:02d} {split:<24} [dim]{when}:[/] acc {acc} est {est} "
            f"drift {drift} {note}"
        )
