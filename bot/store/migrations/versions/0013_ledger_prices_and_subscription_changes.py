"""ledger_prices, and on ledger_subscriptions: price, quantity, period start, trial end, paused

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_prices",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("interval", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_prices")),
    )
    with op.batch_alter_table("ledger_subscriptions", schema=None) as batch:
        batch.add_column(sa.Column("price_id", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("quantity", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch.add_column(
            sa.Column("current_period_start", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("trial_end", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # The defaults only filled the rows already there; the code writes its own.
    with op.batch_alter_table("ledger_subscriptions", schema=None) as batch:
        batch.alter_column("quantity", existing_type=sa.Integer(), server_default=None)
        batch.alter_column("paused", existing_type=sa.Boolean(), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("ledger_subscriptions", schema=None) as batch:
        for column in ("paused", "trial_end", "current_period_start", "quantity", "price_id"):
            batch.drop_column(column)
    op.drop_table("ledger_prices")
