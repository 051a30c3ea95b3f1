"""What a model version is monitored against, loaded once per pass from the registry.

The reference profile (stored at ``loopml run`` by ``train/registration.py``) holds the
training features and label (``"features"``) and the model's outputs on the test set
(``"outputs"``), optionally a score calibration map (``"calibration"``, see
``stats.calibration.fit_calibration``). The schema is the version's stored one (``extra.schema``)
or is inferred from the reference profile. Drift thresholds are calibrated on the reference
per window size (rounded down to a power of two, so a window never gets a looser threshold
than its size warrants) and cached for the pass.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from typing import Any

from loopml.artifacts.store import ArtifactStore
from loopml.errors import DataError
from loopml.stats import DatasetProfile, Schema, Thresholds, calibrate_thresholds, infer_schema
from loopml.stats.column import ColumnProfile
from loopml.store.rows import VersionRow


@dataclass
class Reference:
    version: VersionRow
    digest: str | None
    features: DatasetProfile | None
    outputs: DatasetProfile | None
    label: ColumnProfile | None
    target: str | None
    schema: Schema | None
    task: str
    classes: list[Any] | None
    positive: Any
    calibration: dict[str, Any] | None
    importance: dict[str, float] | None
    problems: list[str] = field(default_factory=list)
    _thresholds: dict[tuple[str, int, float], Thresholds] = field(default_factory=dict)

    @property
    def baseline(self) -> dict[str, Any]:
        """The version's test-set metrics (what live performance is compared with)."""
        return dict(self.version.get("metrics") or {})

    def thresholds(self, part: str, n_rows: int, false_alarm_rate: float) -> Thresholds | None:
        """Calibrated thresholds for ``part`` ("features" or "outputs") and a window size."""
        prof = self.features if part == "features" else self.outputs
        if prof is None or n_rows < 1:
            return None
        size = 2 ** math.floor(math.log2(n_rows))
        key = (part, size, false_alarm_rate)
        if key not in self._thresholds:
            self._thresholds[key] = calibrate_thresholds(
                prof, size, quantile=1 - false_alarm_rate, n_resamples=200, seed=size
            )
        return self._thresholds[key]


def _read_doc(artifacts: ArtifactStore, digest: str) -> dict[str, Any]:
    raw = artifacts.get_bytes(digest)
    try:
        return json.loads(zlib.decompress(raw))
    except (zlib.error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"the reference profile {digest} cannot be read ({exc}); re-register the "
            "version with 'loopml run'",
            field="reference_profile",
        ) from exc


def load_reference(
    artifacts: ArtifactStore, version: VersionRow, *, positive_class: Any = None
) -> Reference:
    """The version's reference; a version without one is monitored without drift/quality."""
    sig = version.get("signature") or {}
    target = sig.get("target")
    classes = sig.get("classes")
    task = sig.get("task", "classification")
    positive = positive_class
    if positive is None and classes and len(classes) == 2:
        positive = classes[1]
    extra = version.get("extra") or {}
    problems: list[str] = []
    features = outputs = None
    label = None
    calibration = extra.get("calibration")
    digest = version.get("reference_profile")
    if digest:
        doc = _read_doc(artifacts, digest)
        features = DatasetProfile.from_dict(doc["features"])
        outputs = DatasetProfile.from_dict(doc["outputs"]) if doc.get("outputs") else None
        calibration = doc.get("calibration") or calibration
        if target and target in features.columns:
            label = features.columns.pop(target)
    else:
        problems.append(
            f"version {version.get('id')} has no reference profile: drift and data "
            "quality are not checked (re-register it with 'loopml run')"
        )
    schema = None
    if extra.get("schema"):
        schema = Schema.from_dict(extra["schema"])
        if target:
            schema.columns.pop(target, None)
    elif features is not None:
        schema = infer_schema(features)
    importance = extra.get("importance")
    if isinstance(importance, list):  # permutation-importance table stored at training time
        importance = {r["feature"]: max(float(r["importance"]), 0.0) for r in importance}
    elif not isinstance(importance, dict):
        importance = None
    return Reference(
        version=version,
        digest=digest,
        features=features,
        outputs=outputs,
        label=label,
        target=target,
        schema=schema,
        task=task,
        classes=classes,
        positive=positive,
        calibration=calibration,
        importance=importance,
        problems=problems,
    )
