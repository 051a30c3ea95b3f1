"""Initial tables: snapshots, runs, versions, aliases, endpoints, traffic history,
decisions, API keys, locks.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("columns", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(40), nullable=False, server_default="manual"),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON),
        sa.Column("snapshots", sa.JSON, nullable=False),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("git_dirty", sa.Boolean),
        sa.Column("python", sa.String(40), nullable=False),
        sa.Column("packages", sa.JSON, nullable=False),
        sa.Column("cpu_seconds", sa.Float),
        sa.Column("peak_memory_mb", sa.Float),
        sa.Column("wall_seconds", sa.Float),
        sa.Column("train_seconds", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("versions.id")),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("lock", sa.Integer, nullable=False, server_default="0"),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("artifact", sa.String(64), nullable=False),
        sa.Column("reference_profile", sa.String(64)),
        sa.Column("signature", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("slices", sa.JSON, nullable=False),
        sa.Column("gates", sa.JSON, nullable=False),
        sa.Column("snapshots", sa.JSON, nullable=False),
        sa.Column("manifest", sa.JSON, nullable=False),
        sa.Column("manifest_signature", sa.Text),
        sa.Column("extra", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("status_changed_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.UniqueConstraint("model", "number", name="uq_versions_model_number"),
    )
    op.create_table(
        "aliases",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("alias", sa.String(60), primary_key=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "endpoints",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("champion_id", sa.Integer, sa.ForeignKey("versions.id")),
        sa.Column("canary_id", sa.Integer, sa.ForeignKey("versions.id")),
        sa.Column("canary_weight", sa.Float, nullable=False, server_default="0"),
        sa.Column("shadows", sa.JSON, nullable=False),
        sa.Column("previous_champion_id", sa.Integer, sa.ForeignKey("versions.id")),
        sa.Column("frozen", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("lock", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "traffic_history",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("traffic", sa.JSON, nullable=False),
    )
    op.create_index("ix_traffic_history_endpoint_at", "traffic_history", ["endpoint", "at"])
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("endpoint", sa.String(200)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("before", sa.JSON),
        sa.Column("after", sa.JSON),
    )
    op.create_index("ix_decisions_at", "decisions", ["at"])
    op.create_index("ix_decisions_endpoint", "decisions", ["endpoint"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("rate_per_s", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_table(
        "locks",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "locks",
        "api_keys",
        "decisions",
        "traffic_history",
        "endpoints",
        "aliases",
        "versions",
        "runs",
        "snapshots",
    ):
        op.drop_table(name)
