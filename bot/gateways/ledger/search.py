"""Finding ledger customers by what a customer quotes: a name, part of an email, an invoice
number, a refund ID. Each answers customer IDs; the gateway builds the profiles."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.gateways.readings import MAX_MATCHES, email_pattern, folded, like_escaped
from bot.store.tables import LedgerCharge, LedgerCustomer, LedgerInvoice, LedgerRefund


async def named(s: AsyncSession, name: str) -> list[str]:
    """Customers whose name contains `name`, case-insensitively and Unicode-normalised; at most
    MAX_MATCHES + 1 (the one more says there are more), by name.

    One query on `name_key`, the name folded as `folded` does when it is written (neither
    database folds Unicode itself): the database walks that index in order and stops at the
    limit."""
    rows = await s.scalars(
        select(LedgerCustomer.id)
        .where(LedgerCustomer.name_key.like(f"%{like_escaped(folded(name))}%", escape="\\"))
        .order_by(LedgerCustomer.name_key, LedgerCustomer.id)
        .limit(MAX_MATCHES + 1)
    )
    return list(rows)


async def by_email_part(s: AsyncSession, part: str) -> list[str]:
    """Customers whose email (stored lower-cased) starts with `jane@`, ends with
    `@example.com` or contains `jane@exa`; at most MAX_MATCHES + 1."""
    rows = await s.scalars(
        select(LedgerCustomer.id)
        .where(LedgerCustomer.email.like(email_pattern(part), escape="\\"))
        .order_by(LedgerCustomer.email, LedgerCustomer.id)
        .limit(MAX_MATCHES + 1)
    )
    return list(rows)


async def by_invoice_number(s: AsyncSession, number: str) -> list[str]:
    rows = await s.scalars(
        select(LedgerInvoice.customer_id).where(LedgerInvoice.number == number).distinct()
    )
    return list(rows)


async def by_refund(s: AsyncSession, refund_id: str) -> str | None:
    """The customer of the charge a refund paid back."""
    return await s.scalar(
        select(LedgerCharge.customer_id)
        .join(LedgerRefund, LedgerRefund.charge_id == LedgerCharge.id)
        .where(LedgerRefund.id == refund_id)
    )
