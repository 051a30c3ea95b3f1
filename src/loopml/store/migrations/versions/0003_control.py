"""Control: rollouts driven by the controller, retraining requests and their outcomes.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("candidate_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
        sa.Column("champion_id", sa.Integer, sa.ForeignKey("versions.id")),
        sa.Column("retrain_id", sa.Integer),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("step", sa.Integer, nullable=False, server_default="-1"),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("step_started_at", sa.Float, nullable=False),
        sa.Column("cursor", sa.Float, nullable=False),
        sa.Column("breaches", sa.Integer, nullable=False, server_default="0"),
        sa.Column("judged", sa.Integer, nullable=False, server_default="0"),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("reason", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_rollouts_endpoint_state", "rollouts", ["endpoint", "state"])
    op.create_table(
        "retrains",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("trigger", sa.String(40), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(20)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("requested_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("run_id", sa.Integer),
        sa.Column("version_id", sa.Integer),
    )
    op.create_index("ix_retrains_endpoint_requested", "retrains", ["endpoint", "requested_at"])


def downgrade() -> None:
    op.drop_index("ix_retrains_endpoint_requested", "retrains")
    op.drop_table("retrains")
    op.drop_index("ix_rollouts_endpoint_state", "rollouts")
    op.drop_table("rollouts")
