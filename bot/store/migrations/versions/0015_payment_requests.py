"""payment_requests: a customer asked to pay through a gateway-hosted pay link, with reminders

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_requests",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("gateway", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("link_id", sa.String(length=255), nullable=False),
        sa.Column("link_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reminders_sent", sa.Integer(), nullable=False),
        sa.Column("next_reminder_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_with", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_requests")),
    )
    op.create_index(op.f("ix_payment_requests_customer_id"), "payment_requests", ["customer_id"])
    op.create_index(op.f("ix_payment_requests_state"), "payment_requests", ["state"])
    op.create_index(op.f("ix_payment_requests_link_id"), "payment_requests", ["link_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_payment_requests_link_id"), table_name="payment_requests")
    op.drop_index(op.f("ix_payment_requests_state"), table_name="payment_requests")
    op.drop_index(op.f("ix_payment_requests_customer_id"), table_name="payment_requests")
    op.drop_table("payment_requests")
