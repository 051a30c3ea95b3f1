"""The gate framework: what a gate gets (:class:`GateContext`), what it returns
(:class:`GateResult`), and how a list of gates runs (:func:`run_gates`).

A gate is built from its options (``gates.<name>`` in loopml.yaml), checked on the way in by
their pydantic model; ``validate(task)`` adds what only the task can tell and ``run(ctx)``
judges one candidate. Parameters round-trip through ``params()`` / ``Gate(**params)``.
A gate that raises never stops the others: :func:`run_gates` records it as a ``fail`` with the
error as evidence.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, cast, get_args

import numpy as np
import pandas as pd
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from loopml.config import options_error
from loopml.errors import ConfigError, LoopmlError
from loopml.jsonsafe import jsonable
from loopml.types import Mapper, Verdict

VERDICTS: tuple[str, ...] = get_args(Verdict)


@dataclass
class GateResult:
    """One gate's stored verdict: a sentence for people and evidence for machines."""

    gate: str
    verdict: Verdict
    blocking: bool
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.verdict == "fail"

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "verdict": self.verdict,
            "blocking": self.blocking,
            "message": self.message,
            "evidence": jsonable(self.evidence),
            "seconds": round(float(self.seconds), 6),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        verdict = data["verdict"]
        if verdict not in VERDICTS:
            raise ValueError(f"Unknown gate verdict {verdict!r}; expected one of {VERDICTS}.")
        return cls(
            gate=data["gate"],
            verdict=verdict,
            blocking=bool(data["blocking"]),
            message=data["message"],
            evidence=dict(data.get("evidence") or {}),
            seconds=float(data.get("seconds", 0.0)),
        )


@dataclass
class GateContext:
    """Everything a gate may look at for one candidate model.

    ``X_test`` is the model's input; ``test_frame`` the same held-out rows with every column
    (sensitive attributes, segments and ids the model may not take; defaults to ``X_test``).
    ``proba`` is ``predict_proba`` on ``X_test`` (``None`` for regression or a model without
    it); ``classes`` is ``model.classes_``; ``champion`` the current champion model, if any;
    ``recent`` a recently labelled frame (features + ``target``) to compare on as well.
    ``features`` are the model's input columns (default: ``X_test``'s); ``train_fn`` is the
    user's training function ``train_fn(X, y, params, seed=...)`` with ``train_params``, so
    gates that retrain (stability, label lint) train exactly as the pipeline did;
    ``reference_schema`` is the champion's stored schema (``Schema.to_dict()``), if any;
    ``champion_error`` says why a champion exists but could not be loaded (the champion gate
    then fails closed instead of reporting "no champion"); ``engine_map`` runs independent
    retrainings (stability seeds, label-lint folds) on an engine's workers (``None``: here).
    """

    model: Any
    X_test: pd.DataFrame
    y_test: Any
    predictions: Any = None
    proba: Any = None
    sensitive: Sequence[str] = ()
    segments: Sequence[str] = ()
    train: pd.DataFrame | None = None
    target: str | None = None
    task: str = "classification"
    classes: Any = None
    champion: Any = None
    recent: pd.DataFrame | None = None
    test_frame: pd.DataFrame | None = None
    seed: int = 0
    features: Sequence[str] | None = None
    train_fn: Callable[..., Any] | None = None
    train_params: dict[str, Any] = field(default_factory=dict)
    reference_schema: dict[str, Any] | None = None
    champion_error: str | None = None  # why the endpoint's champion could not be loaded
    engine_map: Mapper | None = None  # where retraining runs (an engine's map); None: here

    def __post_init__(self) -> None:
        self.y_test = np.asarray(self.y_test)
        if self.predictions is None:
            self.predictions = np.asarray(self.model.predict(self.X_test))
        else:
            self.predictions = np.asarray(self.predictions)
        if self.classes is None and self.task == "classification":
            self.classes = getattr(self.model, "classes_", None)
        if (
            self.proba is None
            and self.task == "classification"
            and hasattr(self.model, "predict_proba")
        ):
            self.proba = np.asarray(self.model.predict_proba(self.X_test))

    @property
    def frame(self) -> pd.DataFrame:
        """The held-out rows with all columns, for slicing by sensitive attributes/segments."""
        return self.test_frame if self.test_frame is not None else self.X_test

    @property
    def pos_label(self) -> Any:
        """The positive class of a binary task (``classes[1]``), else ``None``."""
        if self.classes is not None and len(self.classes) == 2:
            return np.asarray(self.classes)[1]
        return None

    def scores(self, model: Any, X: pd.DataFrame) -> np.ndarray:
        """Positive-class probability (binary), else the prediction, of ``model`` on ``X``."""
        if self.task == "classification" and self.pos_label is None:
            raise ConfigError(
                "Score-based checks (DIR, score ranges, score tolerances) need a binary "
                "classifier or a regressor; this model has classes "
                f"{None if self.classes is None else list(self.classes)}."
            )
        if (
            self.task == "classification"
            and self.pos_label is not None
            and hasattr(model, "predict_proba")
        ):
            return np.asarray(model.predict_proba(X))[:, 1]
        return np.asarray(model.predict(X), dtype=float)


class Gate:
    """Base of every gate: ``validate(task)`` and ``run(ctx)``.

    loopml's own gates are also the pydantic model of their options (``class DataGate(Gate,
    DataGateOptions)``; defaults and bounds in :mod:`loopml.config.gate_options`), so a gate
    exists only with valid options, and a bad one is a :class:`~loopml.errors.ConfigError`
    naming ``gates.<name>.<option>`` as loopml.yaml would. A gate defined elsewhere may be a
    dataclass of its options with its own ``validate`` (see ``gate_registry.register_gate``).
    ``validate(task)`` shadows pydantic's deprecated classmethod ``BaseModel.validate`` (v1's
    ``model_validate``, which loopml never calls); hence the ``type: ignore`` on the gates.
    """

    name: ClassVar[str] = "gate"

    def __init__(self, **params: Any) -> None:
        try:
            super().__init__(**params)  # the options model's, for loopml's own gates
        except PydanticValidationError as e:
            model = cast("type[BaseModel]", type(self))
            raise options_error(e, model, ("gates", self.name), params) from None

    @classmethod
    def option_names(cls) -> list[str]:
        """The keyword arguments the gate takes (its YAML keys)."""
        if issubclass(cls, BaseModel):
            return list(cls.model_fields)
        return [f.name for f in fields(cls)]  # type: ignore[arg-type]

    def params(self) -> dict[str, Any]:
        """The constructor's keyword arguments, so ``type(g)(**g.params())`` rebuilds it."""
        return {name: getattr(self, name) for name in self.option_names()}

    def validate(self, task: str = "classification") -> None:
        """What only the task can tell (a metric a regression lacks, ...): raise
        :class:`~loopml.errors.ConfigError` naming the option; default: nothing to check."""

    def run(self, ctx: GateContext) -> GateResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def result(self, verdict: Verdict, message: str, **evidence: Any) -> GateResult:
        """A :class:`GateResult` for this gate (``seconds`` is filled in by :func:`run_gates`).

        ``blocking`` on the result says whether *this verdict* stops registration: a fail of a
        blocking gate does; "insufficient data" does only for a gate configured to block on
        it (``block_insufficient``), so a result never says ``blocking: true`` while its
        message says it does not block.
        """
        blocking = bool(getattr(self, "blocking", True))
        if verdict == "insufficient_data":
            blocking = blocking and bool(getattr(self, "block_insufficient", False))
        return GateResult(
            gate=self.name,
            verdict=verdict,
            blocking=blocking,
            message=message,
            evidence=evidence,
        )


Progress = Callable[[str, int, int, "GateResult | None"], None]


def run_gates(
    gates: Sequence[Gate], ctx: GateContext, progress: Progress | None = None
) -> list[GateResult]:
    """Run each gate on ``ctx`` and return one result per gate, in order.

    ``progress(gate_name, index, total, result)`` is called before a gate starts (``result``
    None) and after it ends. A gate that raises yields a ``fail`` whose evidence holds the error.
    """
    results: list[GateResult] = []
    total = len(gates)
    for i, gate in enumerate(gates):
        name = getattr(gate, "name", type(gate).__name__)
        if progress:
            progress(name, i, total, None)
        start = time.perf_counter()
        try:
            gate.validate(ctx.task)
            res = gate.run(ctx)
        except Exception as exc:  # a broken gate must not hide the others' verdicts
            kind = "configuration" if isinstance(exc, LoopmlError) else "error"
            res = GateResult(
                gate=name,
                verdict="fail",
                blocking=bool(getattr(gate, "blocking", True)),
                message=f"The {name} gate could not run ({kind}): {exc}",
                evidence={
                    "error": str(exc),
                    "error_type": type(exc).__name__,
                    "traceback": traceback.format_exc(limit=5),
                },
            )
        res.seconds = time.perf_counter() - start
        results.append(res)
        if progress:
            progress(name, i, total, res)
    return results


def blocks(verdict: GateResult | dict[str, Any]) -> bool:
    """Whether one verdict (a result or its stored dict) stops registration: a blocking fail,
    or "insufficient data" from a gate told to block on it (see :meth:`Gate.result`)."""
    if isinstance(verdict, GateResult):
        verdict = {"verdict": verdict.verdict, "blocking": verdict.blocking}
    return bool(verdict.get("blocking", True)) and verdict.get("verdict") != "pass"


def verdict_word(verdict: GateResult | dict[str, Any]) -> str:
    """One word per verdict, the same in every listing: 'pass', 'FAIL', 'not judged' (with
    '(advisory)' for a fail that does not block and '(blocks)' for a blocking not-judged)."""
    if isinstance(verdict, GateResult):
        verdict = verdict.to_dict()
    v = verdict.get("verdict")
    if v == "pass":
        return "pass"
    if v == "fail":
        return "FAIL" if blocks(verdict) else "FAIL (advisory)"
    return "not judged (blocks)" if blocks(verdict) else "not judged"


def overall_verdict(results: Sequence[GateResult]) -> bool:
    """True when no verdict blocks (see :func:`blocks`)."""
    return not any(blocks(r) for r in results)


def blocking_failures(results: Sequence[GateResult]) -> list[GateResult]:
    """The results that make :func:`overall_verdict` false, for the rejection reason."""
    return [r for r in results if blocks(r)]
