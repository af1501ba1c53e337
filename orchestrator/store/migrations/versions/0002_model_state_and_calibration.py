"""model state and warnings on decisions; predicted mean and std beside each measurement (calibration)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_state", _JSON, nullable=True))
        batch_op.add_column(sa.Column("warnings", _JSON, nullable=True))
    with op.batch_alter_table("measurements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("predicted_mean", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("predicted_std", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("measurements", schema=None) as batch_op:
        batch_op.drop_column("predicted_std")
        batch_op.drop_column("predicted_mean")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("warnings")
        batch_op.drop_column("model_state")
