"""Metrics and intervals: per-slice metrics, paired comparisons, bootstrap, per-row losses."""
