"""ledger_charges(customer_id, created): a lookup reads a customer's newest charges only

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_ledger_charges_customer_created", "ledger_charges", ["customer_id", "created"]
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_charges_customer_created", table_name="ledger_charges")
