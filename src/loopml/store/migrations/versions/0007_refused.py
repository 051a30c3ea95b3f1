"""Refused traffic per endpoint and monitor window (issue 13 item 4).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "monitor_refused",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("start", sa.Float, nullable=False),
        sa.Column("end", sa.Float, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("served", sa.Integer, nullable=False),
        sa.Column("share", sa.Float, nullable=True),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("log_files", sa.String(64), nullable=False),
        sa.Column("computed_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("endpoint", "start", name="uq_monitor_refused_key"),
    )


def downgrade() -> None:
    op.drop_table("monitor_refused")
