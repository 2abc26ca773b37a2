"""deliveries, portal_sessions and approvals.budget_day

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Each chat delivery once: the durable backstop of bot/deliveries.py.
    op.create_table(
        "deliveries",
        sa.Column("platform", sa.String(length=40), nullable=False),
        sa.Column("delivery_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("platform", "delivery_id", name=op.f("pk_deliveries")),
    )
    op.create_index(op.f("ix_deliveries_at"), "deliveries", ["at"], unique=False)
    # Billing-page sessions live on the server, so revoking or signing out ends them.
    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("via", sa.String(length=20), nullable=False),
        sa.Column("grant_id", sa.String(length=40), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_why", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_sessions")),
    )
    op.create_index(op.f("ix_portal_sessions_email"), "portal_sessions", ["email"], unique=False)
    op.create_index(
        op.f("ix_portal_sessions_grant_id"), "portal_sessions", ["grant_id"], unique=False
    )
    # The day an automatic request's budget was spent, until it is given back.
    op.add_column("approvals", sa.Column("budget_day", sa.String(length=10), nullable=True))


def downgrade() -> None:
    op.drop_table("deliveries")
    with op.batch_alter_table("approvals") as batch_op:
        batch_op.drop_column("budget_day")
    op.drop_table("portal_sessions")
