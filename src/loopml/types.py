"""Type aliases and small protocols shared across stages."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, Protocol

import numpy as np

Task = Literal["classification", "regression"]
Status = Literal["candidate", "rejected", "shadow", "canary", "champion", "retired", "disabled"]
Role = Literal["viewer", "predictor", "labeller", "deployer", "admin"]
ROLES: tuple[str, ...] = ("viewer", "predictor", "labeller", "deployer", "admin")
Verdict = Literal["pass", "fail", "insufficient_data"]
JSON = dict[str, Any]


class Model(Protocol):
    """What loopml needs of a trained model: scikit-learn's predict (and predict_proba)."""

    def predict(self, X: Any) -> np.ndarray: ...


class Mapper(Protocol):
    """Where independent pieces of work run: ``fn(item, shared)`` for every item, results in
    the order of ``items``. An engine's ``map`` (:mod:`loopml.engines`) is one; floors below
    the engines (gates that retrain, explanations) receive it as a plain callable, and run in
    this process, one item after another, without one (:func:`in_process`)."""

    def __call__(
        self, fn: Callable[[Any, Any], Any], items: Iterable[Any], *, shared: Any = None
    ) -> Iterator[Any]: ...


def in_process(
    fn: Callable[[Any, Any], Any], items: Iterable[Any], *, shared: Any = None
) -> Iterator[Any]:
    """The :class:`Mapper` of this process: one item after another."""
    for item in items:
        yield fn(item, shared)
