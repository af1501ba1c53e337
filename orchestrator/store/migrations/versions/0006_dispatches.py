"""one runner: one row per dispatched attempt, unique per experiment and attempt

The table is the schema's guard against a second runner (see models.Dispatch); what it holds is also in the events
(each move to `dispatched` names its attempt), so campaign archives leave it out.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dispatches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("runner", sa.String(length=128), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("experiment_id", "attempt", name="uq_dispatch_attempt"),
    )


def downgrade() -> None:
    op.drop_table("dispatches")
