"""ledger_pay_links (payment requests paid on our billing pages), ledger_charges.subscription_id,
payment_requests.locale (the customer's language for its emails)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_charges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subscription_id", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_ledger_charges_subscription_id"), ["subscription_id"], unique=False
        )
    with op.batch_alter_table("payment_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locale", sa.String(length=35), nullable=True))
    op.create_table(
        "ledger_pay_links",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("charge_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["ledger_customers.id"],
            name=op.f("fk_ledger_pay_links_customer_id_ledger_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_pay_links")),
    )
    op.create_index(op.f("ix_ledger_pay_links_customer_id"), "ledger_pay_links", ["customer_id"])
    op.create_index(op.f("ix_ledger_pay_links_reference"), "ledger_pay_links", ["reference"])


def downgrade() -> None:
    op.drop_index(op.f("ix_ledger_pay_links_reference"), table_name="ledger_pay_links")
    op.drop_index(op.f("ix_ledger_pay_links_customer_id"), table_name="ledger_pay_links")
    op.drop_table("ledger_pay_links")
    with op.batch_alter_table("payment_requests", schema=None) as batch_op:
        batch_op.drop_column("locale")
    with op.batch_alter_table("ledger_charges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_charges_subscription_id"))
        batch_op.drop_column("subscription_id")
