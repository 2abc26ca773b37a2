"""currency digits: the minor-unit digits stored amounts were written with

Releases before this one took the digits from Babel's CLDR display data, so the
amounts already stored were written with the digits of the Babel installed
then. This records those digits for every currency present in the store; the
start-up check (bot/currency_digits.py) then refuses to read a currency
whose ISO 4217 digits differ, until an operator keeps or converts it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table with a `currency` column as this revision knows them.
_CURRENCY_TABLES = (
    "ledger_charges",
    "ledger_refunds",
    "ledger_subscriptions",
    "ledger_invoices",
    "ledger_disputes",
    "approvals",
    "audit_log",
    "documents",
)


def upgrade() -> None:
    table = op.create_table(
        "currency_digits",
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("digits", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=80), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("currency", name=op.f("pk_currency_digits")),
    )
    bind = op.get_bind()
    present: set[str] = set()
    for name in _CURRENCY_TABLES:
        rows = bind.execute(sa.text(f"SELECT DISTINCT currency FROM {name}"))
        present.update(code for (code,) in rows if code)
    if not present:
        return
    import babel
    from babel.numbers import get_currency_precision

    source = f"Babel {babel.__version__} (migration 0006)"
    now = datetime.now(UTC)
    op.bulk_insert(
        table,
        [
            {
                "currency": code,
                "digits": int(get_currency_precision(code)),
                "source": source,
                "recorded_at": now,
            }
            for code in sorted(present)
        ],
    )


def downgrade() -> None:
    op.drop_table("currency_digits")
