"""billing_index and sync_cursors: every gateway's objects mirrored for search and reports

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_index",
        sa.Column("gateway", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("object_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("name_key", sa.String(length=200), nullable=True),
        sa.Column("number", sa.String(length=64), nullable=True),
        sa.Column("related_id", sa.String(length=128), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("amount_settled", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("exponent", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gateway", "kind", "object_id", name=op.f("pk_billing_index")),
    )
    op.create_index(
        "ix_billing_index_report",
        "billing_index",
        ["kind", "created", "currency", "status", "amount"],
    )
    op.create_index("ix_billing_index_customer", "billing_index", ["gateway", "customer_id"])
    op.create_index(op.f("ix_billing_index_email"), "billing_index", ["email"])
    op.create_index(op.f("ix_billing_index_name_key"), "billing_index", ["name_key"])
    op.create_index(op.f("ix_billing_index_number"), "billing_index", ["number"])
    op.create_table(
        "sync_cursors",
        sa.Column("gateway", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("cursor", sa.String(length=500), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced", sa.BigInteger(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gateway", "kind", name=op.f("pk_sync_cursors")),
    )


def downgrade() -> None:
    op.drop_table("sync_cursors")
    op.drop_index(op.f("ix_billing_index_number"), table_name="billing_index")
    op.drop_index(op.f("ix_billing_index_name_key"), table_name="billing_index")
    op.drop_index(op.f("ix_billing_index_email"), table_name="billing_index")
    op.drop_index("ix_billing_index_customer", table_name="billing_index")
    op.drop_index("ix_billing_index_report", table_name="billing_index")
    op.drop_table("billing_index")
