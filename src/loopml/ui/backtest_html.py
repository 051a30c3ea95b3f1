"""The HTML report of a backtest (``loopml backtest --report FILE``): one self-contained file.

No CDN and no script: the timeline is an inline SVG drawn here (the live metric against the
first champion left alone, one point per monitor window, lines broken where a window has too
few rows to score, decisions marked with their reason as a tooltip), followed by the tables
the JSON holds. Everything shown comes from ``control.timeline.build_result``.
"""

from __future__ import annotations

from html import escape
from typing import Any

from loopml.control.timeline import rollout_kind

W, H = 960, 320
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 16, 40
MARKS = {  # decision action -> (colour, label)
    "retrain": ("#1f6fd1", "retrain"),
    "promote": ("#1a8f3a", "promoted"),
    "rollback": ("#c62828", "rolled back"),
    "inconclusive": ("#757575", "inconclusive"),
}
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:20px} h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0} td,th{border-bottom:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top} th{background:#f4f4f4} .num{text-align:right}
.bad{color:#c62828;font-weight:600} .muted{color:#777} .legend span{margin-right:16px}
svg text{font:11px system-ui,sans-serif;fill:#444}
"""


def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return escape(str(v))


def duration(seconds: float | None) -> str:
    """2592000 -> '30d', 5400 -> '1.5h': the units loopml.yaml uses."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.4g}{unit}"
    return f"{seconds:.4g}s"


def _interval(v: Any) -> str:
    if isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(x, int | float) for x in v):
        return f"[{v[0]:+.4f}, {v[1]:+.4f}]"
    return _f(v)


def _mark_kind(action: str) -> str | None:
    if action in MARKS:
        return action
    kind = rollout_kind(action)
    return "inconclusive" if kind == "inconclusive" else None


def chart(result: dict[str, Any]) -> str:
    """The timeline as inline SVG."""
    windows = result["windows"]
    if not windows:
        return "<p class='muted'>No window served any row.</p>"
    t0, t1 = windows[0]["start"], windows[-1]["end"]
    values = [
        v for w in windows for v in (w["metric"], w["metric_no_retrain"]) if v is not None
    ] or [0.0, 1.0]
    lo, hi = min(values), max(values)
    pad = max(0.005, (hi - lo) * 0.1)
    lo, hi = lo - pad, hi + pad

    def x(t: float) -> float:
        return PAD_L + (t - t0) / ((t1 - t0) or 1.0) * (W - PAD_L - PAD_R)

    def y(v: float) -> float:
        return PAD_T + (hi - v) / (hi - lo) * (H - PAD_T - PAD_B)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="100%" '
        f'role="img" aria-label="{escape(result["metric"])} per window">'
    ]
    for i in range(5):  # y grid
        v = lo + (hi - lo) * i / 4
        out.append(
            f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#eee"/>'
            f'<text x="{PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3f}</text>'
        )
    step = max(1, len(windows) // 8)
    for w in windows[::step]:  # x labels: the history date each window starts
        out.append(
            f'<text x="{x(w["start"]):.1f}" y="{H - PAD_B + 16}" text-anchor="middle">'
            f"{escape((w['history_start'] or '')[:10])}</text>"
        )
    for key, colour, dash in (
        ("metric_no_retrain", "#9e9e9e", ' stroke-dasharray="5 4"'),
        ("metric", "#1f6fd1", ""),
    ):
        for seg in _segments(windows, key):
            pts = " ".join(f"{x((w['start'] + w['end']) / 2):.1f},{y(w[key]):.1f}" for w in seg)
            out.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{pts}"/>'
            )
        for w in windows:
            if w[key] is not None:
                cx, cy = x((w["start"] + w["end"]) / 2), y(w[key])
                out.append(
                    f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.5" fill="{colour}"><title>'
                    f"{escape((w['history_start'] or '')[:10])} {escape(key)} "
                    f"{w[key]:.4f} (champion v{w['champion']}, {w['rows']} rows)</title></circle>"
                )
    for d in result.get("decisions", []):
        kind = _mark_kind(d["action"])
        if kind is None or (kind != "retrain" and d.get("actor") != "controller"):
            continue
        colour, label = MARKS[kind]
        px = x(min(max(d["at"], t0), t1))
        out.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{PAD_T}" y2="{H - PAD_B}" stroke="{colour}" '
            f'stroke-width="1.5" stroke-dasharray="2 3"><title>{escape(label)} '
            f"({escape(d['history_time'] or '')}): {escape(d['reason'])}</title></line>"
            f'<text x="{min(px + 3, W - PAD_R - 70):.1f}" y="{PAD_T + 10}" '
            f'fill="{colour}">{escape(label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _segments(windows: list[dict[str, Any]], key: str) -> list[list[dict[str, Any]]]:
    """Runs of windows that have a value: a window with too few rows breaks the line."""
    runs: list[list[dict[str, Any]]] = [[]]
    for w in windows:
        if w[key] is None:
            runs.append([])
        else:
            runs[-1].append(w)
    return [r for r in runs if r]


def _table(columns: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _rollouts(result: dict[str, Any]) -> str:
    rows = []
    for kind in ("promotions", "rollbacks", "inconclusive"):
        for r in result.get(kind, []):
            false = r.get("false_rollback")
            rows.append(
                [
                    escape(kind[:-1] if kind.endswith("s") else kind),
                    _f(r.get("history_time")),
                    _f(r.get("candidate")),
                    _f(r.get("champion")),
                    _f(r.get("score_used")),
                    _f(r.get("margin_used"), 4),
                    _interval(r.get("interval")),
                    _f(r.get("estimate"), 4),
                    _f(r.get("offline_paired_delta"), 4),
                    _f(r.get("offline_rows")),
                    "<span class='bad'>false rollback</span>" if false else _f(false),
                    _f(r.get("reason")),
                ]
            )
    if not rows:
        return "<p class='muted'>No rollout was decided.</p>"
    return _table(
        [
            "decision",
            "when (history)",
            "candidate",
            "champion",
            "score",
            "margin",
            "interval",
            "online estimate",
            "offline delta",
            "rows",
            "false rollback",
            "reason",
        ],
        rows,
    )


def render_backtest(result: dict[str, Any]) -> str:
    """The whole report as one HTML string."""
    s, m = result["summary"], escape(result["metric"])
    legend = (
        "<p class='legend'><span style='color:#1f6fd1'>━ live "
        f"{m} (the loop)</span><span style='color:#9e9e9e'>┅ {m} of the first champion, "
        "never retrained</span>"
        + "".join(f"<span style='color:{c}'>┆ {escape(lbl)}</span>" for c, lbl in MARKS.values())
        + "</p>"
    )
    windows = _table(
        [
            "window from (history)",
            "champion",
            "rows",
            "canary rows",
            m,
            f"{m} no retrain",
            "decisions",
        ],
        [
            [
                _f((w["history_start"] or "")[:10]),
                _f(w["champion"]),
                _f(w["rows"]),
                _f(w["canary_rows"]),
                "<span class='muted'>too few rows</span>" if w["too_few_rows"] else _f(w["metric"]),
                "" if w["too_few_rows"] else _f(w["metric_no_retrain"]),
                escape(
                    ", ".join(
                        dict.fromkeys(
                            d["action"]
                            for d in w["decisions"]
                            if not d["action"].startswith("status:")
                        )
                    )
                ),
            ]
            for w in result["windows"]
        ],
    )
    retrains = _table(
        ["#", "when (history)", "trigger", "status", "outcome", "version", "reason"],
        [
            [
                _f(r["id"]),
                _f(r["history_time"]),
                _f(r["trigger"]),
                _f(r["status"]),
                _f(r["outcome"]),
                _f(r["version"]),
                _f(r["reason"]),
            ]
            for r in result.get("retrains", [])
            if r["status"] != "suppressed"
        ],
    )
    suppressed = sum(r["status"] == "suppressed" for r in result.get("retrains", []))
    if suppressed:
        retrains += (
            f"<p class='muted'>{suppressed} more trigger(s) fired but were suppressed "
            "(cooldown, budget, breaker); see the decisions in the JSON.</p>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>loopml backtest · {escape(result["endpoint"])}</title><style>{CSS}</style></head>
<body>
<h1>Backtest of endpoint {escape(result["endpoint"])}</h1>
<p>{escape(result["data"])}: {_f(result["rows"])} rows in {_f(result["requests"])} requests,
{escape(result["from"])} to {escape(result["to"])}; labels arrive
{escape(duration(result["label_delay_s"]))} after their prediction; one monitor window stands for
{escape(duration(result["per_window_s"]))} of history. First champion: version {_f(result["first_champion"])}; final champion: version
{_f(s["final_champion"])}.</p>
<p><b>{m}: {_f(s["mean_metric"])}</b> with the loop, {_f(s["mean_metric_no_retrain"])} with the
first champion left alone (row-weighted over {_f(s["scored_windows"])} scored windows).
Retrainings {_f(s["retrains"])}, promotions {_f(s["promotions"])}, rollbacks
{_f(s["rollbacks"])} (false: {_f(s["false_rollbacks"])}), inconclusive
{_f(s["inconclusive"])}.</p>
{"".join(f"<p class='muted'>Note: {escape(n)}</p>" for n in result.get("notes", []))}
<h2>Timeline</h2>
{chart(result)}
{legend}
<h2>Rollout decisions</h2>
{_rollouts(result)}
<h2>Retrainings</h2>
{retrains}
<h2>Windows</h2>
{windows}
<p class="muted">Made by loopml backtest in {_f(result["wall_seconds"], 1)} s (seed
{_f(result["seed"])}).</p>
</body></html>
"""
