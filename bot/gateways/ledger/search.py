"""Finding ledger customers by what a customer quotes: a name, part of an email, an invoice
number, a refund ID. Each answers customer IDs; the gateway builds the profiles."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.gateways.readings import MAX_MATCHES, folded
from bot.store.tables import LedgerCharge, LedgerCustomer, LedgerInvoice, LedgerRefund

# Names are compared in Python: SQLite's lower() knows ASCII only and neither database
# normalises Unicode (`Zoë` typed composed, stored decomposed). Rows are read in batches,
# name and ID only.
_BATCH = 2000


async def named(s: AsyncSession, name: str) -> list[str]:
    """Customers whose name contains `name`, case-insensitively and Unicode-normalised; at most
    MAX_MATCHES + 1 (the one more says there are more), by name."""
    wanted = folded(name)
    found: list[tuple[str, str]] = []
    rows = await s.stream(
        select(LedgerCustomer.id, LedgerCustomer.name)
        .where(LedgerCustomer.name.is_not(None))
        .execution_options(yield_per=_BATCH)
    )
    async for customer_id, stored in rows:
        if wanted in folded(stored):
            found.append((folded(stored), customer_id))
    return [customer_id for _, customer_id in sorted(found)[: MAX_MATCHES + 1]]


async def by_email_part(s: AsyncSession, part: str) -> list[str]:
    """Customers whose email (stored lower-cased) starts with `jane@`, ends with
    `@example.com` or contains `jane@exa`; at most MAX_MATCHES + 1."""
    local, _, domain = part.partition("@")
    escaped = part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"{escaped}%" if not domain else f"%{escaped}" if not local else f"%{escaped}%"
    rows = await s.scalars(
        select(LedgerCustomer.id)
        .where(LedgerCustomer.email.like(pattern, escape="\\"))
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
