"""The ledger's objects page by page, for the billing index (`Gateway.sync_page`).

Keyset pages in (created, id) order, so a page never repeats or skips a row however
many are added meanwhile; subscriptions and disputes, which record no creation time, go in
id order. The cursor is the last row's key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from bot.gateways.base import SyncPage
from bot.gateways.ledger import mapping
from bot.store.db import Database
from bot.store.tables import (
    LedgerCharge,
    LedgerCustomer,
    LedgerDispute,
    LedgerInvoice,
    LedgerRefund,
    LedgerSubscription,
)

# kind -> (table, its rows as our models)
_KINDS: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "customer": (LedgerCustomer, mapping.customer_of),
    "charge": (LedgerCharge, mapping.charge_of),
    "refund": (LedgerRefund, mapping.refund_of),
    "invoice": (LedgerInvoice, mapping.invoice_of),
    "subscription": (LedgerSubscription, mapping.subscription_of),
    "dispute": (LedgerDispute, mapping.dispute_of),
}
_SEP = "|"


async def page(
    db: Database, kind: str, cursor: str | None, *, since: datetime | None, limit: int
) -> SyncPage:
    """The next `limit` rows of `kind` after `cursor`, as our models."""
    table, to_model = _KINDS[kind]
    created = getattr(table, "created", None)
    query = select(table)
    if created is not None:
        if since is not None:
            query = query.where(created >= since)
        if cursor:
            at, _, last = cursor.partition(_SEP)
            when = datetime.fromisoformat(at)
            query = query.where(or_(created > when, and_(created == when, table.id > last)))
        query = query.order_by(created, table.id)
    else:
        if cursor:
            query = query.where(table.id > cursor)
        query = query.order_by(table.id)
    async with db.read() as session:
        rows = list(await session.scalars(query.limit(limit)))
    if not rows:
        return SyncPage([], cursor, more=False)
    last = rows[-1]
    after = f"{last.created.isoformat()}{_SEP}{last.id}" if created is not None else last.id
    return SyncPage([to_model(r) for r in rows], after, more=len(rows) == limit)
