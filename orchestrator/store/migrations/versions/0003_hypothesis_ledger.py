"""hypothesis ledger: credence history, experiments that test hypotheses, LLM exchanges on decisions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exchange", _JSON, nullable=True))
    with op.batch_alter_table("hypotheses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decision_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("evidence", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("predicted", _JSON, nullable=True))
        batch_op.add_column(sa.Column("origin", _JSON, nullable=True))
        batch_op.create_foreign_key("fk_hypotheses_decision_id_decisions", "decisions", ["decision_id"], ["id"])
    op.create_table(
        "hypothesis_credences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hypothesis_id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("credence", sa.Float(), nullable=False),
        sa.Column("evidence", sa.Integer(), nullable=False),
        sa.Column("observations", sa.Integer(), nullable=False),
        sa.Column("predicted", _JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["cycle_id"], ["cycles.id"]),
        sa.ForeignKeyConstraint(["hypothesis_id"], ["hypotheses.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_hypothesis_credences_hypothesis", "hypothesis_credences", ["hypothesis_id", "id"])
    op.create_table(
        "hypothesis_tests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hypothesis_id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("chosen", sa.Boolean(), nullable=False),
        sa.Column("information_bits", sa.Float(), nullable=False),
        sa.Column("predicted", _JSON, nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"]),
        sa.ForeignKeyConstraint(["hypothesis_id"], ["hypotheses.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hypothesis_id", "experiment_id", name="uq_hypothesis_test"),
    )
    op.create_index("ix_hypothesis_tests_experiment", "hypothesis_tests", ["experiment_id"])


def downgrade() -> None:
    op.drop_index("ix_hypothesis_tests_experiment", table_name="hypothesis_tests")
    op.drop_table("hypothesis_tests")
    op.drop_index("ix_hypothesis_credences_hypothesis", table_name="hypothesis_credences")
    op.drop_table("hypothesis_credences")
    with op.batch_alter_table("hypotheses", schema=None) as batch_op:
        batch_op.drop_constraint("fk_hypotheses_decision_id_decisions", type_="foreignkey")
        batch_op.drop_column("origin")
        batch_op.drop_column("predicted")
        batch_op.drop_column("evidence")
        batch_op.drop_column("reason")
        batch_op.drop_column("decision_id")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("exchange")
