"""The ledger's plans (`ledger_prices`): what `subscribe` and `plan` can put a customer on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.store.db import Database
from bot.store.tables import LedgerPrice


async def put_prices(db: Database, prices: Iterable[dict[str, Any]]) -> int:
    """Add or update plans by ID: `{"id", "name", "amount" (minor units), "currency",
    "interval", "active"}`; returns how many were written."""
    count = 0
    async with db.write() as s:
        for price in prices:
            row = await s.get(LedgerPrice, price["id"])
            if row is None:
                row = LedgerPrice(id=price["id"])
                s.add(row)
            row.name, row.amount, row.currency = price["name"], price["amount"], price["currency"]
            row.interval = price.get("interval", "month")
            row.active = price.get("active", True)
            count += 1
    return count
