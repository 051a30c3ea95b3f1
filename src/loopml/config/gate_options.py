"""The ``gates:`` section of ``loopml.yaml``: each gate's options as a pydantic model, with every
default and bound, so a bad option is reported when the file is read, with its line, like any
other key.

The gates themselves (``loopml.evaluate.gating``) are built on these models: ``DataGate`` is a
``DataGateOptions`` that can run. What only the task can tell (a metric that exists for a
classifier but not for a regression, a fairness gate on a regression) is checked when the gate
is built for a run, by the gate's ``validate(task)``. The names a gate option may take (metric
names, fairness criteria, label filters) are defined here and imported by the code that
computes them.

Options are strict: a number is not read from a string and a switch must be true or false
(``explain: "yes"`` is an error, not a truthy string).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, model_validator

from loopml.config.fields import Section

Metric = Literal[
    "accuracy",
    "roc_auc",
    "log_loss",
    "f1",
    "precision",
    "recall",
    "positive_rate",
    "base_rate",
    "mae",
    "rmse",
    "r2",
]
REGRESSION_METRICS: tuple[str, ...] = ("mae", "rmse", "r2")
CLASSIFICATION_METRICS: tuple[str, ...] = tuple(
    m for m in get_args(Metric) if m not in REGRESSION_METRICS
)

#: metrics a challenger can be compared on with the champion (paired intervals), per task
COMPARABLE_BINARY: tuple[str, ...] = (
    "roc_auc",
    "accuracy",
    "log_loss",
    "f1",
    "precision",
    "recall",
)
COMPARABLE_MULTICLASS: tuple[str, ...] = ("accuracy", "log_loss")
COMPARABLE_REGRESSION: tuple[str, ...] = ("rmse", "mae", "r2")
ComparableMetric = Literal[
    "roc_auc", "accuracy", "log_loss", "f1", "precision", "recall", "rmse", "mae", "r2"
]

FAIRNESS_CRITERIA: tuple[str, ...] = (
    "demographic_parity",
    "equal_opportunity",
    "equalized_odds",
    "predictive_parity",
)
FairnessThreshold = Literal[
    "demographic_parity_ratio",
    "demographic_parity_difference",
    "equal_opportunity_ratio",
    "equal_opportunity_difference",
    "equalized_odds_ratio",
    "equalized_odds_difference",
    "predictive_parity_ratio",
    "predictive_parity_difference",
]
FAIRNESS_THRESHOLDS: tuple[str, ...] = get_args(FairnessThreshold)
DEFAULT_FAIRNESS_THRESHOLDS: dict[FairnessThreshold, float] = {
    "demographic_parity_ratio": 0.8
}  # four-fifths

#: cleanlab's ``find_label_issues(filter_by=...)`` names
LabelFilter = Literal[
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_normalized_margin",
    "low_self_confidence",
]
LABEL_FILTERS: tuple[str, ...] = get_args(LabelFilter)

THRESHOLD_RULE = re.compile(r"^\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def _rule(value: str) -> str:
    if not THRESHOLD_RULE.match(value):
        raise ValueError("an operator and a number such as '>= 0.7' or '<= 0.45'")
    return value


def _a_list_of_tests(value: Any) -> Any:
    if not isinstance(value, list | tuple):
        raise ValueError(
            "must be a list of tests, one per line starting with '-', e.g. "
            f"'- {{type: DIR, column: age, expect: up}}'; got a {type(value).__name__}"
        )
    return list(value)


def _some_thresholds(value: dict[Any, float]) -> dict[Any, float]:
    if not value:
        raise ValueError(
            f"must map a criterion to a number, e.g. {DEFAULT_FAIRNESS_THRESHOLDS}; valid names: "
            f"{', '.join(FAIRNESS_THRESHOLDS)}"
        )
    return value


Share = Annotated[float, Field(ge=0, le=1)]
Rule = Annotated[str, AfterValidator(_rule)]


class GateOptions(Section):
    """What every gate takes: ``enabled`` (false leaves the gate out) and ``blocking``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool = True
    blocking: bool = True


class MetricsGateOptions(GateOptions):
    """Absolute thresholds on the test-set metrics (``loopml.evaluate.gating.metric_gates``);
    ``gates.metrics: {accuracy: '>= 0.7'}`` is short for ``{thresholds: {accuracy: ...}}``."""

    thresholds: dict[Metric, Rule] = Field(default_factory=dict)
    per_slice: bool = False
    min_slice_size: int = Field(30, ge=0)
    min_rows: int = Field(30, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict):
            rest = {k: v for k, v in data.items() if k != "enabled"}
            if rest and all(isinstance(v, str) for v in rest.values()):
                kept = {"enabled": data["enabled"]} if "enabled" in data else {}
                return {**kept, "thresholds": rest}
        return data


class ChampionGateOptions(GateOptions):
    """Not worse than the champion by more than ``delta`` (lower end of the paired interval)."""

    metric: ComparableMetric | None = None
    delta: float = Field(0.01, ge=0)
    confidence: float = Field(0.95, gt=0, lt=1)
    n_boot: int = Field(1000, ge=50)
    min_rows: int = Field(100, ge=0)
    seed: int = 0


class FairnessGateOptions(GateOptions):
    """Worst-case intersectional fairness (``loopml.evaluate.gating.fairness``)."""

    thresholds: Annotated[dict[FairnessThreshold, Share], AfterValidator(_some_thresholds)] = Field(
        default_factory=lambda: dict(DEFAULT_FAIRNESS_THRESHOLDS)
    )
    min_group_size: int = Field(30, ge=0)
    min_positives: int = Field(10, ge=0)
    min_negatives: int = Field(10, ge=0)
    min_predicted_positives: int = Field(10, ge=0)
    confidence: float = Field(0.95, gt=0, lt=1)
    use_intervals: bool = True
    block_insufficient: bool = False
    pos_label: Any = None
    explain: bool = True  # a failed check says which columns carry its gap (xai.attribution)


class BehaviourGateOptions(GateOptions):
    """MFT/INV/DIR tests (``loopml.evaluate.checklist``); each test's own options are checked by
    its type when the gate is built, and its columns against the model's inputs."""

    tests: Annotated[list[Any], BeforeValidator(_a_list_of_tests)] = Field(default_factory=list)
    max_rows: int = Field(1000, ge=1)
    max_failures_shown: int = Field(20, ge=0)
    seed: int = 0


class DataGateOptions(GateOptions):
    """Schema and quality rules on the training set, and single-feature leakage."""

    max_null_rate: Share = 0.5
    warn_null_rate: Share = 0.1
    max_out_of_range_share: Share = 0.01
    range_factor: float = Field(10.0, ge=0, le=1e12)
    max_duplicate_share: Share | None = None
    fail_on_constant: bool = False
    leakage_auc: float = Field(0.98, ge=0.5, le=1)
    leakage_recode_auc: float = Field(0.95, ge=0.5, le=1)
    leakage_warn_auc: float = Field(0.85, ge=0.5, le=1)
    recode_max_distinct: int = Field(20, ge=1)
    leakage_folds: int = Field(5, ge=2)
    min_rows: int = Field(30, ge=0)


class LabelsGateOptions(GateOptions):
    """Label lint: likely label errors, minority share and outliers (advisory by default)."""

    blocking: bool = False
    max_flagged_fraction: Share = 0.15
    min_class_share: Share = 0.01
    max_outlier_fraction: Share = 0.05
    outlier_score: Share = 0.65
    n_folds: int = Field(3, ge=2)
    max_rows: int = Field(10000, ge=100)
    filter_by: LabelFilter = "prune_by_noise_rate"
    outliers: bool = True
    id_column: str | None = None
    top_n: int = Field(20, ge=0)
    max_quarantine: int = Field(10000, ge=0)


class StabilityGateOptions(GateOptions):
    """Spread of a metric over seeds, overall and on stress slices (advisory by default)."""

    blocking: bool = False
    seeds: int = Field(5, ge=2)
    metric: Metric | None = None
    max_spread: float = Field(0.02, ge=0)
    max_slice_spread: float = Field(0.05, ge=0)
    max_disagreement: float = Field(0.1, ge=0)
    stress_slices: int = Field(3, ge=0)
    min_slice_size: int = Field(100, ge=0)


class GatesConfig(Section):
    """The checks a candidate must pass before it is registered. Unset gates are off, except
    fairness, which runs with the four-fifths rule whenever ``data.sensitive`` is set
    (``fairness: {enabled: false}`` turns it off)."""

    metrics: MetricsGateOptions | None = None
    champion: ChampionGateOptions | None = None  # runs when a champion exists
    fairness: FairnessGateOptions | None = None
    behaviour: BehaviourGateOptions | None = None
    data: DataGateOptions | None = None
    labels: LabelsGateOptions | None = None
    stability: StabilityGateOptions | None = None
