"""artifacts in the database: a decision's content-addressed artifacts are rows, found from any folder and host

Artifacts written before this revision stay where they were (`<db>.artifacts/`, `$PEIRCE_ARTIFACTS`, or
`./peirce-artifacts` on PostgreSQL); the store reads them from there when the table does not have them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )


def downgrade() -> None:
    op.drop_table("artifacts")
