"""The metadata store's tables (SQLAlchemy Core). Small, transactional metadata only:
per-prediction rows live in Parquet under the artifact root, never here.

Times are UNIX seconds (float, UTC) so SQLite and Postgres compare them the same way.
JSON columns hold evidence, metrics, signatures and the like.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("source", Text, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("columns", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project", String(200), nullable=False),
    Column("model", String(200), nullable=False),
    Column("status", String(20), nullable=False),  # running | succeeded | failed
    Column("trigger", String(40), nullable=False, server_default="manual"),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=True),
    Column("snapshots", JSON, nullable=False),  # {"train": hash, "test": hash}
    Column("git_commit", String(64), nullable=True),
    Column("git_dirty", Boolean, nullable=True),
    Column("python", String(40), nullable=False),
    Column("packages", JSON, nullable=False),
    Column("cpu_seconds", Float, nullable=True),
    Column("peak_memory_mb", Float, nullable=True),
    Column("wall_seconds", Float, nullable=True),
    Column("train_seconds", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    # entry point and sha256 of the project's Python files, thread limits (migration 0004)
    Column("details", JSON, nullable=True),
)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model", String(200), nullable=False),
    Column("number", Integer, nullable=False),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("parent_id", Integer, ForeignKey("versions.id"), nullable=True),
    Column("status", String(20), nullable=False),
    Column("lock", Integer, nullable=False, server_default="0"),
    Column("format", String(20), nullable=False),
    Column("artifact", String(64), nullable=False),  # sha256 of the model file
    Column("reference_profile", String(64), nullable=True),  # sha256 of its stored profile
    Column("signature", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("slices", JSON, nullable=False),
    Column("gates", JSON, nullable=False),  # list of gate verdicts
    Column("snapshots", JSON, nullable=False),
    Column("manifest", JSON, nullable=False),
    Column("manifest_signature", Text, nullable=True),
    Column("extra", JSON, nullable=False),  # importance, card fields, schema ...
    Column("created_at", Float, nullable=False),
    Column("status_changed_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    UniqueConstraint("model", "number", name="uq_versions_model_number"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("alias", String(60), primary_key=True),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("updated_at", Float, nullable=False),
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("model", String(200), nullable=False),
    Column("champion_id", Integer, ForeignKey("versions.id"), nullable=True),
    Column("canary_id", Integer, ForeignKey("versions.id"), nullable=True),
    Column("canary_weight", Float, nullable=False, server_default="0"),
    Column("shadows", JSON, nullable=False),  # [{"version_id": 3, "fraction": 1.0}]
    Column("previous_champion_id", Integer, ForeignKey("versions.id"), nullable=True),
    Column("frozen", Boolean, nullable=False, server_default="0"),
    Column("lock", Integer, nullable=False, server_default="0"),
    Column("updated_at", Float, nullable=False),
)

traffic_history = Table(
    "traffic_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("endpoint", String(200), nullable=False),
    Column("at", Float, nullable=False),
    Column("traffic", JSON, nullable=False),
    Index("ix_traffic_history_endpoint_at", "endpoint", "at"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Float, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(60), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("endpoint", String(200), nullable=True),
    Column("reason", Text, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Index("ix_decisions_at", "at"),
    Index("ix_decisions_endpoint", "endpoint"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("hash", String(64), nullable=False),
    Column("role", String(20), nullable=False),
    Column("name", String(200), nullable=False),
    Column("rate_per_s", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("endpoints", JSON, nullable=True),  # the endpoints a scoped key may touch; NULL: all
)

locks = Table(
    "locks",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", Float, nullable=False),
)

# --------------------------------------------------------------------------- monitoring (0002)
# One row per (endpoint, version, role, window start). The summary numbers the dashboard plots
# are columns, so a year of hourly windows reads without touching the per-column detail in
# ``monitor_results`` (fetched for one window at a time). ``profile`` is the artifact digest of the
# window's mergeable profile; ``log_files`` / ``label_files`` fingerprint the Parquet parts a
# result was computed from, so a rerun recomputes only when new parts (late compaction, new
# labels) arrived.
monitor_windows = Table(
    "monitor_windows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("endpoint", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("role", String(20), nullable=False),
    Column("start", Float, nullable=False),
    Column("end", Float, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("labels", Integer, nullable=False, server_default="0"),
    Column("metric", String(40), nullable=True),
    Column("performance", Float, nullable=True),
    Column("estimated_performance", Float, nullable=True),
    Column("accuracy", Float, nullable=True),
    Column("estimated_accuracy", Float, nullable=True),
    Column("drift_score", Float, nullable=True),
    Column("drifted", Boolean, nullable=False, server_default="0"),
    Column("n_drifted", Integer, nullable=False, server_default="0"),
    Column("prediction_drift", Float, nullable=True),
    Column("quality_errors", Integer, nullable=False, server_default="0"),
    Column("quality_warnings", Integer, nullable=False, server_default="0"),
    Column("fairness_ratio", Float, nullable=True),
    Column("latency_p50", Float, nullable=True),
    Column("latency_p99", Float, nullable=True),
    Column("errors", Integer, nullable=False, server_default="0"),
    # (migration 0006) the label-free estimate's check against labels: ok | unreliable |
    # unchecked; label drift of the target and its base rate (issue 11 item 7)
    Column("estimate_status", String(20), nullable=True),
    Column("label_drift", Float, nullable=True),
    Column("base_rate", Float, nullable=True),
    Column("multivariate_auc", Float, nullable=True),  # domain classifier (multivariate drift)
    Column("profile", String(64), nullable=True),
    Column("log_files", String(64), nullable=False),
    Column("label_files", String(64), nullable=False),
    Column("computed_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("endpoint", "version", "role", "start", name="uq_monitor_windows_key"),
    Index("ix_monitor_windows_endpoint_start", "endpoint", "start"),
)

# The per-column detail of a window, in its own table so that scanning the summary rows above
# reads small rows (a year of hourly windows in well under the dashboard's 300 ms).
monitor_results = Table(
    "monitor_results",
    metadata,
    Column("window_id", Integer, ForeignKey("monitor_windows.id"), primary_key=True),
    Column("results", JSON, nullable=False),
)

# (migration 0007) Refused traffic per (endpoint, window start), issue 13 item 4: requests and
# rows answered 4xx before any model ran, so they have no row in ``monitor_windows`` (a window
# where every request was refused has no version and no prediction). ``served`` is the rows the
# endpoint answered in the same window (champion and canary), ``share`` the refused share of
# rows the alert rule ``on: refused`` judges; ``counts`` the breakdown by reason, column and
# status; ``log_files`` a digest of the counts, so a rerun rewrites only a changed window.
monitor_refused = Table(
    "monitor_refused",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("endpoint", String(200), nullable=False),
    Column("start", Float, nullable=False),
    Column("end", Float, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("served", Integer, nullable=False),
    Column("share", Float, nullable=True),
    Column("counts", JSON, nullable=False),
    Column("log_files", String(64), nullable=False),
    Column("computed_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("endpoint", "start", name="uq_monitor_refused_key"),
)

# Alerts, deduplicated by (rule, endpoint, subject): at most one open row per key. ``first_seen``
# / ``last_seen`` are window times (data time), ``created_at`` / ``updated_at`` wall-clock.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("rule", String(200), nullable=False),
    Column("on", String(40), nullable=False),
    Column("endpoint", String(200), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("status", String(20), nullable=False),  # open | resolved
    Column("message", Text, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("count", Integer, nullable=False, server_default="1"),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("resolved_at", Float, nullable=True),
    Column("window_id", Integer, nullable=True),
    Column("notified_at", Float, nullable=True),
    Column("delivery", JSON, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_alerts_key", "rule", "endpoint", "subject", "status"),
    Index("ix_alerts_status", "status", "endpoint"),
)

# --------------------------------------------------------------------------- control (0003)
# One row per rollout of a candidate on an endpoint, driven by the controller: shadow, then the
# canary steps, then promoted, rolled_back or aborted. ``cursor`` is the end (log time) of the
# last judged guard batch; ``breaches`` the number of consecutive breached batches; ``judged``
# the judged batches in the current step; ``evidence`` the last guard evaluation. Times are the
# controller's clock.
rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("endpoint", String(200), nullable=False),
    Column("candidate_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("champion_id", Integer, ForeignKey("versions.id"), nullable=True),
    Column("retrain_id", Integer, nullable=True),
    Column(
        "state", String(20), nullable=False
    ),  # shadow | canary | promoted | rolled_back | inconclusive | aborted
    Column("step", Integer, nullable=False, server_default="-1"),  # index into rollout.steps
    Column("started_at", Float, nullable=False),
    Column("step_started_at", Float, nullable=False),
    Column("cursor", Float, nullable=False),
    Column("breaches", Integer, nullable=False, server_default="0"),
    Column("judged", Integer, nullable=False, server_default="0"),
    Column("evidence", JSON, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("reason", Text, nullable=True),
    Column("updated_at", Float, nullable=False),
    Index("ix_rollouts_endpoint_state", "endpoint", "state"),
)

# Retraining requests and their outcomes: manual requests (pending), triggers that started a
# run (running -> done with an outcome), and triggers suppressed by cooldown, budget or the
# breaker (recorded once per dedupe key). Cooldown, the daily budget and the breaker are read
# from here.
retrains = Table(
    "retrains",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("endpoint", String(200), nullable=False),
    Column("trigger", String(40), nullable=False),
    Column("key", String(200), nullable=False),  # dedupe key: the same evidence fires once
    Column("status", String(20), nullable=False),  # pending | running | done | suppressed
    # rejected | not_better | rollout | promoted | rolled_back | inconclusive | aborted | error
    # | interrupted (its controller died during the run)
    Column("outcome", String(20), nullable=True),
    Column("reason", Text, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("requested_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("run_id", Integer, nullable=True),
    Column("version_id", Integer, nullable=True),
    Index("ix_retrains_endpoint_requested", "endpoint", "requested_at"),
)
