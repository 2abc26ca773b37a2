"""ledger_coupons and ledger_discounts: the ledger gateway's coupons and applied discounts

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_coupons",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("percent_off_bp", sa.Integer(), nullable=True),
        sa.Column("amount_off", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("duration", sa.String(length=16), nullable=False),
        sa.Column("duration_in_months", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_coupons")),
    )
    op.create_table(
        "ledger_discounts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("coupon_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["coupon_id"],
            ["ledger_coupons.id"],
            name=op.f("fk_ledger_discounts_coupon_id_ledger_coupons"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["ledger_customers.id"],
            name=op.f("fk_ledger_discounts_customer_id_ledger_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_discounts")),
        sa.UniqueConstraint("target_id", name=op.f("uq_ledger_discounts_target_id")),
    )
    op.create_index(
        op.f("ix_ledger_discounts_customer_id"), "ledger_discounts", ["customer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ledger_discounts_customer_id"), table_name="ledger_discounts")
    op.drop_table("ledger_discounts")
    op.drop_table("ledger_coupons")
