"""Data-quality checks of a current window (profile or frame) against the training schema.

Checks: missing and extra columns, kind and dtype-family changes, null-rate jumps, out-of-range
values, unseen categories, vanished segments (a level with a real share in training that falls
to about zero) and volume anomalies (row count against an expected count). Every finding
carries its evidence: what was expected, what was observed, and how many rows are affected.

Rates are compared with room for sampling noise: a null-rate or out-of-range jump must exceed
both a fixed tolerance and four binomial standard errors of the window, so large windows do not
flag trivia and small windows do not flag noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from loopml.stats.column import CategoricalProfile, NumericProfile
from loopml.stats.inferred_schema import Schema, out_of_range
from loopml.stats.profile import DatasetProfile, Frame

Severity = Literal["info", "warning", "error"]


@dataclass
class Tolerances:
    """How far a window may stray before a check fires."""

    null_rate_jump: float = 0.02  # absolute increase of the null rate
    out_of_range_share: float = 0.001  # share of values beyond the training out-of-range share
    unseen_share: float = 0.0  # share of values in unseen categories that is tolerated
    segment_min_share: float = 0.01  # a level is a segment if its training share is at least this
    segment_vanish_ratio: float = 0.1  # vanished when observed <= this * expected count
    segment_min_expected: float = 20.0  # ... and at least this many rows were expected
    volume_ratio: float = 0.5  # anomalous when |observed - expected| > this * expected
    z: float = 4.0  # binomial standard errors of room for noise


@dataclass
class Finding:
    """One failed check with its evidence: expected, observed, rows_affected."""

    check: str
    column: str | None
    severity: Severity
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _family(dtype: str | None) -> str:
    d = (dtype or "").lower()
    if "bool" in d:
        return "bool"
    if any(t in d for t in ("date", "time", "duration")):
        return "temporal"
    if any(t in d for t in ("int", "float", "double", "decimal")):
        return "number"  # int <-> float is not a change: pandas turns ints with nulls to floats
    return "text"


def _noise(p: float, n: int, tol: Tolerances) -> float:
    return tol.z * float(np.sqrt(max(p, 1.0 / max(n, 1)) * (1 - p) / max(n, 1)))


def _volume(schema: Schema, n: int, expected: float | None, tol: Tolerances) -> list[Finding]:
    if n == 0:
        return [
            Finding(
                "volume",
                None,
                "error",
                "the window has no rows; is the source down?",
                {"expected": expected, "observed": 0, "rows_affected": 0},
            )
        ]
    if expected is None or expected <= 0:
        return []
    slack = max(tol.volume_ratio * expected, tol.z * np.sqrt(expected))
    if abs(n - expected) <= slack:
        return []
    word = "fewer" if n < expected else "more"
    return [
        Finding(
            "volume",
            None,
            "warning",
            f"the window has {n} rows, {word} than the expected {expected:.0f} "
            f"(tolerance ±{slack:.0f})",
            {"expected": expected, "observed": n, "rows_affected": abs(n - round(expected))},
        )
    ]


def _numeric(
    name: str, c: Any, prof: NumericProfile, n_rows: int, tol: Tolerances
) -> list[Finding]:
    if c.lower is None or prof.count == 0:
        return []
    below, above, exact = out_of_range(prof, c.lower, c.upper)
    share = (below + above) / prof.count
    limit = (
        c.out_of_range_rate + tol.out_of_range_share + _noise(c.out_of_range_rate, prof.count, tol)
    )
    if share <= limit:
        return []
    return [
        Finding(
            "out_of_range",
            name,
            # a few strays are a warning; a large share is a broken feed (e.g. a unit change)
            "error" if share >= max(0.05, 10 * limit) else "warning",
            f"{below + above} values of {name!r} ({share:.2%}) lie outside the training "
            f"range [{c.lower:.4g}, {c.upper:.4g}) (expected at most {limit:.2%})",
            {
                "expected": {"lower": c.lower, "upper": c.upper, "max_share": limit},
                "observed": {
                    "min": prof.min,
                    "max": prof.max,
                    "below": below,
                    "above": above,
                    "share": share,
                    "exact": exact,
                },
                "rows_affected": below + above,
            },
        )
    ]


def _categorical(name: str, c: Any, prof: CategoricalProfile, tol: Tolerances) -> list[Finding]:
    out: list[Finding] = []
    n = prof.count
    if n == 0:
        return out
    if c.categories is not None:
        allowed = set(c.categories)
        unseen = {k: v for k, v in prof.counts.items() if k not in allowed}
        rows = sum(unseen.values()) + prof.other
        if rows / n > tol.unseen_share:
            top = dict(sorted(unseen.items(), key=lambda kv: -kv[1])[:10])
            out.append(
                Finding(
                    "unseen_category",
                    name,
                    "warning",
                    f"{len(unseen)} categories of {name!r} never seen in training "
                    f"({rows} rows, {rows / n:.2%}), e.g. {list(top)[:3]}",
                    {
                        "expected": f"{len(allowed)} training categories",
                        "observed": top,
                        "rows_affected": rows,
                    },
                )
            )
    vanished = {}
    for level, share in c.shares.items():
        expected = share * n
        if share < tol.segment_min_share or expected < tol.segment_min_expected:
            continue
        observed = prof.counts.get(level, 0)
        if observed <= tol.segment_vanish_ratio * expected:
            vanished[level] = (share, observed, expected)
    for level, (share, observed, expected) in vanished.items():
        out.append(
            Finding(
                "vanished_segment",
                name,
                "warning",
                f"segment {name}={level!r} had {share:.2%} of training rows but "
                f"{observed} of {n} rows here (expected about {expected:.0f})",
                {
                    "expected": {"share": share, "rows": expected},
                    "observed": {"share": observed / n, "rows": observed},
                    "rows_affected": round(expected - observed),
                },
            )
        )
    return out


def check_quality(
    schema: Schema,
    current: DatasetProfile | Frame,
    *,
    expected_rows: float | None = None,
    tolerances: Tolerances | None = None,
) -> list[Finding]:
    """Check a window against the schema; returns the findings (empty when all is well).

    ``current`` is best a profile built with the reference (exact out-of-range counts); a
    frame is profiled on the schema's bounds. ``expected_rows`` enables the volume check.
    """
    tol = tolerances or Tolerances()
    if not isinstance(current, DatasetProfile):
        current = DatasetProfile.from_frame(current, reference=schema.template())
    n = current.n_rows
    findings = _volume(schema, n, expected_rows, tol)
    for name, c in schema.columns.items():
        prof = current.columns.get(name)
        if prof is None:
            findings.append(
                Finding(
                    "missing_column",
                    name,
                    "error",
                    f"column {name!r} is missing from the window",
                    {"expected": c.kind, "observed": None, "rows_affected": n},
                )
            )
            continue
        if prof.kind != c.kind or _family(prof.dtype) != _family(c.dtype):
            severe = prof.kind != c.kind
            findings.append(
                Finding(
                    "type_change",
                    name,
                    "error" if severe else "warning",
                    f"column {name!r} was {c.kind} ({c.dtype}) in training and is "
                    f"{prof.kind} ({prof.dtype}) here",
                    {
                        "expected": c.dtype,
                        "observed": prof.dtype,
                        "rows_affected": prof.count if severe else 0,
                    },
                )
            )
            if severe:
                continue
        if n:
            rate = prof.nulls / n
            limit = c.null_rate + max(tol.null_rate_jump, _noise(c.null_rate, n, tol))
            if rate > limit:
                findings.append(
                    Finding(
                        "null_rate",
                        name,
                        "error" if c.null_rate == 0 and rate > 0.5 else "warning",
                        f"{rate:.2%} of {name!r} is missing against {c.null_rate:.2%} "
                        f"in training (limit {limit:.2%})",
                        {"expected": c.null_rate, "observed": rate, "rows_affected": prof.nulls},
                    )
                )
        if isinstance(prof, NumericProfile):
            findings.extend(_numeric(name, c, prof, n, tol))
        elif isinstance(prof, CategoricalProfile):
            findings.extend(_categorical(name, c, prof, tol))
    for name in current.columns:
        if name not in schema.columns:
            findings.append(
                Finding(
                    "extra_column",
                    name,
                    "info",
                    f"column {name!r} was not in the training data",
                    {"expected": None, "observed": current.columns[name].kind, "rows_affected": 0},
                )
            )
    return findings
