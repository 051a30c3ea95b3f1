"""The pieces every behavioural test shares: the sampled rows, the result record and the
base class (see :mod:`loopml.evaluate.checklist.behaviour` for the tests themselves)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from loopml.errors import ConfigError

if TYPE_CHECKING:
    from loopml.evaluate.gating.gates import GateContext


@dataclass
class Sample:
    """The held-out rows a test looks at, with the candidate's predictions already made."""

    X: pd.DataFrame
    pred: np.ndarray
    score: np.ndarray


def row_ids(X: pd.DataFrame, positions: np.ndarray) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in X.index[positions]]


def check_result(
    test: BehaviourTest,
    n: int,
    failed: np.ndarray,
    failures: list[dict[str, Any]],
    cap: int,
    **extra: Any,
) -> dict[str, Any]:
    n_failed = int(failed.sum()) if n else 0
    rate = n_failed / n if n else None
    verdict = "insufficient_data" if not n else "fail" if rate > test.max_failure_rate else "pass"  # type: ignore[operator]
    return {
        "name": test.label,
        "type": test.kind,
        "n": n,
        "n_failed": n_failed,
        "failure_rate": rate,
        "max_failure_rate": test.max_failure_rate,
        "verdict": verdict,
        "failures": failures[:cap],
        **extra,
    }


@dataclass(kw_only=True)
class BehaviourTest:
    kind: ClassVar[str] = "test"
    name: str | None = None
    max_failure_rate: float = 0.0

    @property
    def label(self) -> str:
        """The test's name, or one made from its settings."""
        return self.name or self._default_name()

    def _default_name(self) -> str:
        return self.kind

    def validate(self, X: pd.DataFrame | None = None) -> None:
        if not 0 <= self.max_failure_rate <= 1:
            raise ConfigError(
                f"max_failure_rate of behaviour test {self.label!r} "
                f"must be in [0, 1]; got {self.max_failure_rate!r}.",
                field="max_failure_rate",
            )

    def run(
        self, ctx: GateContext, sample: Sample, rng: np.random.Generator, cap: int
    ) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


def plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
