"""dispute evidence on ledger disputes, and dispute_reminders (one per dispute per threshold)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_disputes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("evidence_submitted_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "dispute_reminders",
        sa.Column("gateway", sa.String(length=40), nullable=False),
        sa.Column("dispute_id", sa.String(length=64), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gateway", "dispute_id", "days", name=op.f("pk_dispute_reminders")),
    )


def downgrade() -> None:
    op.drop_table("dispute_reminders")
    with op.batch_alter_table("ledger_disputes", schema=None) as batch_op:
        batch_op.drop_column("evidence_submitted_at")
        batch_op.drop_column("evidence")
