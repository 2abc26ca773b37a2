"""Names searched in SQL: ledger_customers.name_key (folded), and the billing index's customers
by name and email in one index

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fold(name: str) -> str:
    # As bot.store.tables.fold_name at the time of writing (a migration keeps its own copy).
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())[:200]


def upgrade() -> None:
    with op.batch_alter_table("ledger_customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name_key", sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f("ix_ledger_customers_name_key"), ["name_key"])
    customers = sa.table(
        "ledger_customers", sa.column("id", sa.String), sa.column("name", sa.String),
        sa.column("name_key", sa.String),
    )  # fmt: skip
    bind = op.get_bind()
    named = bind.execute(
        sa.select(customers.c.id, customers.c.name).where(customers.c.name.is_not(None))
    )
    rows = [{"key": _fold(name), "cid": cid} for cid, name in named]
    if rows:
        bind.execute(
            customers.update()
            .where(customers.c.id == sa.bindparam("cid"))
            .values(name_key=sa.bindparam("key")),
            rows,
        )
    # Lookup reads customers by folded name or part of an email: this index alone answers it.
    op.create_index(
        "ix_billing_index_people",
        "billing_index",
        ["kind", "name_key", "email", "gateway", "customer_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_billing_index_people", table_name="billing_index")
    with op.batch_alter_table("ledger_customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_customers_name_key"))
        batch_op.drop_column("name_key")
