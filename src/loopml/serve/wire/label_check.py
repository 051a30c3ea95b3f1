"""Check ground-truth labels against the model of the endpoint whose request they answer.

A regression's label must be a number; a classifier's label must be one of the classes it was
trained on. A matching label is logged as the class itself (``1.0``, ``"1"`` and ``1`` are the
class ``1``; ``1`` and ``true`` the class ``True``), so every label of an endpoint has one type
in the log and the monitor compares like with like. Labels of endpoints whose model is not
loaded here are logged unchecked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from loopml.data.signature import Signature
from loopml.errors import ValidationError

_SHOWN_CLASSES = 10


def class_key(value: Any) -> str:
    """A class label as text, as the monitor compares them: ``1.0`` and ``1`` are ``'1'``."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _bool_key(value: Any) -> str | None:
    # 0/1 labels for a classifier whose classes are booleans
    if isinstance(value, int | float) and not isinstance(value, bool) and value in (0, 1):
        return str(bool(value))
    return None


def check_labels(
    labels: Mapping[str, Any],
    endpoints: Mapping[str, str],
    signatures: Mapping[str, Iterable[Signature]],
) -> dict[str, Any]:
    """``labels`` (request id -> label, in body order) with each label of a known request
    (``endpoints``: request id -> endpoint) checked against ``signatures`` (endpoint -> the
    signatures of the versions it serves) and normalised to the class it names.

    Raises :class:`ValidationError` naming ``labels[i].label`` for the first bad label."""
    out = dict(labels)
    kinds: dict[str, tuple[str, dict[str, Any]] | None] = {}
    for i, (rid, label) in enumerate(labels.items()):
        ep = endpoints.get(rid)
        if ep is None:
            continue
        if ep not in kinds:
            kinds[ep] = _kind(signatures.get(ep, ()))
        kind = kinds[ep]
        if kind is None:
            continue
        task, classes = kind
        field = f"labels[{i}].label"
        if task == "regression":
            if isinstance(label, bool) or not isinstance(label, int | float):
                raise ValidationError(
                    f"'{field}' must be a number: endpoint {ep!r} serves a regression model. "
                    "Send the measured value.",
                    field=field,
                    row=i,
                )
            continue
        key = class_key(label)
        if key not in classes:
            key = _bool_key(label) or key
        if key not in classes:
            names = [repr(c) for c in classes.values()]
            shown = ", ".join(names[:_SHOWN_CLASSES]) + (
                ", ..." if len(names) > _SHOWN_CLASSES else ""
            )
            raise ValidationError(
                f"'{field}' is not one of the {len(names)} classes the model of endpoint "
                f"{ep!r} was trained on ({shown}). Send one of them; a model learns a new "
                "class only when it is retrained on data that has it.",
                field=field,
                row=i,
            )
        out[rid] = classes[key]
    return out


def _kind(signatures: Iterable[Signature]) -> tuple[str, dict[str, Any]] | None:
    """``(task, {class key: class})`` of an endpoint's loaded versions (every version's
    classes are allowed); None when nothing is loaded or the classes are unknown."""
    task = None
    classes: dict[str, Any] = {}
    for sig in signatures:
        if task is not None and sig.task != task:
            return None  # versions disagree on the task: leave the labels to the monitor
        task = sig.task
        if task == "classification":
            if not sig.classes:
                return None
            classes.update((class_key(c), c) for c in sig.classes)
    return None if task is None else (task, classes)
