"""Monitoring: per-window summaries (monitor_windows), their detail (monitor_results), alerts.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "monitor_windows",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("start", sa.Float, nullable=False),
        sa.Column("end", sa.Float, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("labels", sa.Integer, nullable=False, server_default="0"),
        sa.Column("metric", sa.String(40)),
        sa.Column("performance", sa.Float),
        sa.Column("estimated_performance", sa.Float),
        sa.Column("accuracy", sa.Float),
        sa.Column("estimated_accuracy", sa.Float),
        sa.Column("drift_score", sa.Float),
        sa.Column("drifted", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("n_drifted", sa.Integer, nullable=False, server_default="0"),
        sa.Column("prediction_drift", sa.Float),
        sa.Column("quality_errors", sa.Integer, nullable=False, server_default="0"),
        sa.Column("quality_warnings", sa.Integer, nullable=False, server_default="0"),
        sa.Column("fairness_ratio", sa.Float),
        sa.Column("latency_p50", sa.Float),
        sa.Column("latency_p99", sa.Float),
        sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
        sa.Column("profile", sa.String(64)),
        sa.Column("log_files", sa.String(64), nullable=False),
        sa.Column("label_files", sa.String(64), nullable=False),
        sa.Column("computed_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("endpoint", "version", "role", "start", name="uq_monitor_windows_key"),
    )
    op.create_index("ix_monitor_windows_endpoint_start", "monitor_windows", ["endpoint", "start"])
    op.create_table(
        "monitor_results",
        sa.Column("window_id", sa.Integer, sa.ForeignKey("monitor_windows.id"), primary_key=True),
        sa.Column("results", sa.JSON, nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("on", sa.String(40), nullable=False),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("count", sa.Integer, nullable=False, server_default="1"),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("resolved_at", sa.Float),
        sa.Column("window_id", sa.Integer),
        sa.Column("notified_at", sa.Float),
        sa.Column("delivery", sa.JSON),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_alerts_key", "alerts", ["rule", "endpoint", "subject", "status"])
    op.create_index("ix_alerts_status", "alerts", ["status", "endpoint"])


def downgrade() -> None:
    op.drop_index("ix_alerts_status", "alerts")
    op.drop_index("ix_alerts_key", "alerts")
    op.drop_table("alerts")
    op.drop_table("monitor_results")
    op.drop_index("ix_monitor_windows_endpoint_start", "monitor_windows")
    op.drop_table("monitor_windows")
