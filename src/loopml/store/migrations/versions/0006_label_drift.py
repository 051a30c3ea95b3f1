"""Monitor windows: the estimate's check against labels, label drift and the base rate, and
the domain classifier's AUC (multivariate drift).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    with op.batch_alter_table("monitor_windows") as batch:
        batch.add_column(sa.Column("estimate_status", sa.String(20), nullable=True))
        batch.add_column(sa.Column("label_drift", sa.Float, nullable=True))
        batch.add_column(sa.Column("base_rate", sa.Float, nullable=True))
        batch.add_column(sa.Column("multivariate_auc", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitor_windows") as batch:
        batch.drop_column("multivariate_auc")
        batch.drop_column("base_rate")
        batch.drop_column("label_drift")
        batch.drop_column("estimate_status")
