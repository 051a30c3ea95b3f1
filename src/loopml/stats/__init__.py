"""Pure statistics: mergeable profiles, drift distances and tests, schema and quality checks.

Knows nothing of the store, the server or the config; every input is a frame or a profile.
"""

from loopml.stats.column import CategoricalProfile, NumericProfile
from loopml.stats.drift import ColumnDrift, DatasetDrift, column_drift, dataset_drift
from loopml.stats.inferred_schema import ColumnSchema, Schema, infer_schema
from loopml.stats.multivariate import MultivariateDrift, domain_classifier_drift
from loopml.stats.profile import DatasetProfile
from loopml.stats.quality import Finding, Tolerances, check_quality
from loopml.stats.thresholds import Thresholds, calibrate_thresholds

__all__ = [
    "CategoricalProfile",
    "ColumnDrift",
    "ColumnSchema",
    "DatasetDrift",
    "DatasetProfile",
    "Finding",
    "MultivariateDrift",
    "NumericProfile",
    "Schema",
    "Thresholds",
    "Tolerances",
    "calibrate_thresholds",
    "check_quality",
    "column_drift",
    "dataset_drift",
    "domain_classifier_drift",
    "infer_schema",
]
