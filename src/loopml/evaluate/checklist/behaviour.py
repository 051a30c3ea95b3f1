"""Behavioural tests for tabular models, after CheckList's taxonomy (Ribeiro, Wu, Guestrin and
Singh, "Beyond Accuracy: Behavioral Testing of NLP Models with CheckList", ACL 2020):

- :class:`MFT` minimum functionality: golden cases (CSV/YAML) with an expected label or a score
  range ``[lo, hi]``;
- :class:`INV` invariance: numeric ``noise``, category ``synonyms`` and a ``swap`` of each
  sensitive attribute to every other value (a counterfactual-fairness check) must not change
  the prediction;
- :class:`DIR` directional: moving a feature by a step must move the positive-class score one
  way (a row fails if it moves the other way by more than ``tolerance``; the test also fails
  when the mean move is not above ``min_mean_effect``, i.e. the model ignores the feature).

Written by hand: CheckList is NLP-only and does not build; Deepchecks and Giskard's tabular
checks do not install with numpy 2 (docs/design/measurements.md, "Behavioural tests").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from loopml.config import BehaviourGateOptions
from loopml.errors import ConfigError
from loopml.evaluate.checklist.checks import BehaviourTest, Sample, check_result, plain, row_ids
from loopml.evaluate.checklist.golden import MFT, load_cases
from loopml.evaluate.checklist.perturb import (
    INV_PERTURBATIONS,
    check_columns,
    noise,
    step_values,
    swaps,
    synonyms,
)
from loopml.evaluate.gating.gates import Gate, GateContext, GateResult

TEST_TYPES: tuple[str, ...] = ("MFT", "INV", "DIR")

__all__ = ["DIR", "INV", "MFT", "BehaviourGate", "BehaviourTest", "behaviour_test", "load_cases"]


@dataclass(kw_only=True)
class INV(BehaviourTest):
    """The prediction must not change under ``perturbation``: ``noise`` (``columns``,
    ``scale`` x column std), ``synonyms`` (``mapping`` {column: {value: synonym}}) or ``swap``
    (``columns``, default the sensitive attributes; only to values held by at least
    ``min_value_count`` held-out rows). With ``score_tolerance``, a score move
    larger than it also fails (required for regression)."""

    kind: ClassVar[str] = "INV"
    perturbation: str = "swap"
    columns: Sequence[str] | None = None
    scale: float = 0.05
    mapping: Mapping[str, Mapping[Any, Any]] | None = None
    score_tolerance: float | None = None
    min_value_count: int = 30
    max_failure_rate: float = 0.01

    def _default_name(self) -> str:
        cols = list(self.mapping or {}) if self.perturbation == "synonyms" else self.columns
        return f"{self.perturbation}" + (f" {','.join(cols)}" if cols else "")

    def validate(self, X: pd.DataFrame | None = None) -> None:
        super().validate(X)
        if self.perturbation not in INV_PERTURBATIONS:
            raise ConfigError(
                f"Unknown INV perturbation {self.perturbation!r}. Valid "
                f"perturbations: {', '.join(INV_PERTURBATIONS)}.",
                field="perturbation",
            )
        if self.perturbation == "noise" and not self.columns:
            raise ConfigError(
                "INV noise needs `columns` (numeric columns to perturb).", field="columns"
            )
        if self.perturbation == "synonyms" and not self.mapping:
            raise ConfigError(
                "INV synonyms needs `mapping`: {column: {value: synonym}}.", field="mapping"
            )
        if X is not None:
            cols = (
                list(self.mapping or {})
                if self.perturbation == "synonyms"
                else list(self.columns or [])
            )
            check_columns(X, cols, f"INV {self.perturbation}")

    def run(
        self, ctx: GateContext, sample: Sample, rng: np.random.Generator, cap: int
    ) -> dict[str, Any]:
        if ctx.task == "regression" and self.score_tolerance is None:
            raise ConfigError(
                "An INV test on a regression model needs score_tolerance.", field="score_tolerance"
            )
        X = sample.X
        if self.perturbation == "swap":
            # by default: the sensitive attributes the model takes as input
            cols = list(self.columns or [c for c in ctx.sensitive if c in X.columns])
            if not cols:
                return check_result(
                    self,
                    0,
                    np.zeros(0, bool),
                    [],
                    cap,
                    note="no columns to swap (no sensitive attribute is a model input)",
                )
            check_columns(X, cols, "INV swap")
            counts = {c: ctx.X_test[c].value_counts() for c in cols}
            allowed = {c: set(v.index[v >= self.min_value_count]) for c, v in counts.items()}
            parts = [p for p in swaps(X, cols) if p[1] in allowed[p[0]]]
            descr = [{"column": c, "to": plain(v)} for c, v, _, _ in parts]
            positions = [p for _, _, p, _ in parts]
            frames = [f for _, _, _, f in parts]
        elif self.perturbation == "noise":
            frames, positions = (
                [noise(X, list(self.columns or []), self.scale, rng)],
                [np.arange(len(X))],
            )
            descr = [{"columns": list(self.columns or []), "scale": self.scale}]
        else:
            frames, positions = [synonyms(X, self.mapping or {})], [np.arange(len(X))]
            descr = [{"mapping": {k: dict(v) for k, v in (self.mapping or {}).items()}}]
        if not frames:
            return check_result(self, 0, np.zeros(0, bool), [], cap)
        big = pd.concat(frames, ignore_index=True)
        at = np.concatenate(positions)
        which = np.repeat(np.arange(len(frames)), [len(p) for p in positions])
        bad = np.zeros(len(at), dtype=bool)
        classify = ctx.task != "regression"
        pred = np.asarray(ctx.model.predict(big)) if classify else None
        if pred is not None:
            bad |= pred != sample.pred[at]
        score = None
        if self.score_tolerance is not None:
            score = ctx.scores(ctx.model, big)
            bad |= np.abs(score - sample.score[at]) > self.score_tolerance
        shown = np.flatnonzero(bad)[:cap]
        scored = ctx.task == "regression" or ctx.pos_label is not None
        if score is not None:
            after = score[shown]
        elif scored and len(shown):
            after = ctx.scores(ctx.model, big.iloc[shown])
        else:  # a multiclass model has no single score to show
            after = np.full(len(shown), np.nan)
        failed = np.zeros(len(X), dtype=bool)
        failed[at[bad]] = True
        ids = row_ids(X, at[shown])
        failures = []
        for i, j in enumerate(shown):
            row = {
                "row": ids[i],
                **descr[which[j]],
                "before": float(sample.score[at[j]]),
                "after": float(after[i]),
            }
            if pred is not None:
                row.update(
                    prediction_before=plain(sample.pred[at[j]]), prediction_after=plain(pred[j])
                )
            failures.append(row)
        return check_result(
            self, len(X), failed, failures, cap, perturbation=self.perturbation, checks=len(at)
        )


@dataclass(kw_only=True)
class DIR(BehaviourTest):
    """Moving ``column`` by ``step`` (numbers: added; ordered categories: levels of ``order``)
    must move the score ``expect`` ("up" or "down"): a row fails when it moves the other way by
    more than ``tolerance``; the test fails too when the mean move is not above
    ``min_mean_effect``."""

    kind: ClassVar[str] = "DIR"
    column: str = ""
    step: float = 1
    expect: str = "up"
    tolerance: float = 0.0
    min_mean_effect: float = 0.0
    order: Sequence[Any] | None = None
    max_failure_rate: float = 0.05

    def _default_name(self) -> str:
        return f"{self.column} {self.step:+g} -> {self.expect}"

    def validate(self, X: pd.DataFrame | None = None) -> None:
        super().validate(X)
        if self.expect not in ("up", "down"):
            raise ConfigError(
                f"DIR expect must be 'up' or 'down'; got {self.expect!r}.", field="expect"
            )
        if not self.column:
            raise ConfigError("A DIR test needs `column`.", field="column")
        if not self.step:
            raise ConfigError("DIR step must not be 0.", field="step")
        if X is not None:
            check_columns(X, [self.column], "DIR column")

    def run(
        self, ctx: GateContext, sample: Sample, rng: np.random.Generator, cap: int
    ) -> dict[str, Any]:
        X = sample.X
        rows, moved = step_values(X, self.column, self.step, self.order)
        if not len(rows):
            return check_result(self, 0, np.zeros(0, bool), [], cap, column=self.column)
        before = sample.score[rows]
        after = ctx.scores(ctx.model, moved)
        sign = 1.0 if self.expect == "up" else -1.0
        change = sign * (after - before)
        bad = change < -self.tolerance
        mean_effect = float(change.mean())
        ids = row_ids(X, rows[bad][:cap])
        old, new = X[self.column].iloc[rows].to_numpy(), moved[self.column].to_numpy()
        failures = [
            {
                "row": ids[i],
                "from": plain(old[j]),
                "to": plain(new[j]),
                "before": float(before[j]),
                "after": float(after[j]),
            }
            for i, j in enumerate(np.flatnonzero(bad)[:cap])
        ]
        res = check_result(
            self,
            len(rows),
            bad,
            failures,
            cap,
            column=self.column,
            step=self.step,
            expect=self.expect,
            mean_effect=mean_effect,
            skipped=int(len(X) - len(rows)),
        )
        if res["verdict"] == "pass" and not mean_effect > self.min_mean_effect:
            res["verdict"] = "fail"
            res["reason"] = (
                f"the score did not move {self.expect} on average (mean change "
                f"{sign * mean_effect:+.4f}): the model seems to ignore "
                f"{self.column}"
            )
        return res


def behaviour_test(spec: BehaviourTest | Mapping[str, Any]) -> BehaviourTest:
    """A test object from ``{"type": "DIR", "column": "SCHL", ...}`` (the YAML form)."""
    if isinstance(spec, BehaviourTest):
        return spec
    spec = dict(spec)
    kind = str(spec.pop("type", "")).upper()
    classes = {"MFT": MFT, "INV": INV, "DIR": DIR}
    if kind not in classes:
        raise ConfigError(
            f"Behaviour test type {kind or None!r} is unknown; valid types: "
            f"{', '.join(TEST_TYPES)}.",
            field="gates.behaviour.tests.type",
        )
    try:
        return classes[kind](**spec)
    except TypeError as exc:
        import dataclasses

        valid = [f.name for f in dataclasses.fields(classes[kind])]
        raise ConfigError(
            f"Bad option for a {kind} test ({exc}); valid options: {', '.join(valid)}.",
            field="gates.behaviour.tests",
        ) from None


def _located(i: int, fn: Any) -> Any:
    """Call ``fn``; a ConfigError it raises is re-raised naming test ``i``'s key path
    (``gates.behaviour.tests.<i>.<option>``), so that the config can name its YAML line."""
    try:
        return fn()
    except ConfigError as e:
        last = (e.field or "").rsplit(".", 1)[-1]
        option = last if last.isidentifier() and last != "tests" else ""
        prefix = f"gates.behaviour.tests[{i}]: "
        message = e.message if e.message.startswith("gates.behaviour") else prefix + e.message
        raise ConfigError(
            message, field=f"gates.behaviour.tests.{i}" + (f".{option}" if option else "")
        ) from None


class BehaviourGate(Gate, BehaviourGateOptions):
    """Runs MFT/INV/DIR tests on up to ``max_rows`` sampled held-out rows; fails when any
    test's failure rate exceeds its ``max_failure_rate``. Failing rows are listed (at most
    ``max_failures_shown`` per test)."""

    name: ClassVar[str] = "behaviour"

    def _specs(self) -> list[Any]:
        """``tests`` checked for shape: its items are mappings (YAML ``- {...}``) or tests."""
        for i, spec in enumerate(self.tests):
            if not isinstance(spec, Mapping | BehaviourTest):
                raise ConfigError(
                    f"gates.behaviour.tests[{i}] must be a mapping such as '{{type: DIR, "
                    f"column: age, expect: up}}'; got {spec!r}.",
                    field=f"gates.behaviour.tests.{i}",
                )
        return list(self.tests)

    def validate(self, task: str = "classification") -> None:  # type: ignore[override]
        for i, spec in enumerate(self._specs()):
            test = _located(i, lambda spec=spec: behaviour_test(spec))
            _located(i, test.validate)
            # known before training: a regression's prediction moves by some amount every time
            if task == "regression" and isinstance(test, INV) and test.score_tolerance is None:
                raise ConfigError(
                    f"gates.behaviour.tests[{i}] (INV {test.perturbation}) judges a regression "
                    "model, so it needs score_tolerance: the largest change of the predicted "
                    "value that still counts as unchanged, in units of the target (e.g. "
                    "score_tolerance: 0.5).",
                    field=f"gates.behaviour.tests.{i}.score_tolerance",
                )

    def check_data(self, X: pd.DataFrame) -> None:
        """Before training: every test's columns are model inputs (``X``: the feature columns
        of the training data) and MFT cases load and carry every input column."""
        for i, spec in enumerate(self._specs()):
            test = behaviour_test(spec)
            _located(i, lambda test=test: test.validate(X))
            if isinstance(test, MFT):
                cases = _located(i, lambda test=test: load_cases(test.cases))
                missing = [c for c in X.columns if c not in cases.columns]
                if missing:
                    raise ConfigError(
                        f"gates.behaviour.tests[{i}] (MFT): the cases lack the model input "
                        f"column(s) {missing}; every case needs all of {list(X.columns)}.",
                        field=f"gates.behaviour.tests.{i}.cases",
                    )

    def run(self, ctx: GateContext) -> GateResult:
        tests = [behaviour_test(s) for s in self.tests]
        if not tests:
            return self.result("pass", "No behavioural tests are configured.", tests=[])
        for t in tests:
            t.validate(ctx.X_test)
        rng = np.random.default_rng(self.seed)
        total = len(ctx.X_test)
        pos = (
            np.sort(rng.choice(total, self.max_rows, replace=False))
            if total > self.max_rows
            else np.arange(total)
        )
        if ctx.task == "classification" and ctx.pos_label is not None and ctx.proba is not None:
            score = np.asarray(ctx.proba)[pos, 1]
        elif ctx.task == "regression":
            score = np.asarray(ctx.predictions, dtype=float)[pos]
        elif ctx.pos_label is not None:
            score = ctx.scores(ctx.model, ctx.X_test.iloc[pos])
        else:
            score = np.full(len(pos), np.nan)
        sample = Sample(X=ctx.X_test.iloc[pos], pred=np.asarray(ctx.predictions)[pos], score=score)
        results = [t.run(ctx, sample, rng, self.max_failures_shown) for t in tests]
        bad = [r for r in results if r["verdict"] == "fail"]

        def line(r: dict[str, Any]) -> str:
            why = r.get("reason") or (
                f"{r['failure_rate']:.1%} of {r['n']} rows failed (max {r['max_failure_rate']:.1%})"
            )
            return f"{r['type']} {r['name']}: {why}"

        if bad:
            return self.result("fail", "; ".join(line(r) for r in bad) + ".", tests=results)
        if all(r["verdict"] == "insufficient_data" for r in results):
            return self.result(
                "insufficient_data", "No behavioural test had rows to check.", tests=results
            )
        return self.result(
            "pass",
            f"{len(results)} behavioural test(s) passed: "
            + ", ".join(
                f"{r['type']} {r['name']} ({r['n_failed']}/{r['n']} failed)" for r in results
            )
            + ".",
            tests=results,
        )
