"""Writing rows into the billing index.

An upsert per batch: a newer sighting of an object replaces what the index held, except
that what one source does not know (a charge synced on its own knows no email, a webhook
knows no refunded total) never erases what another told us.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.index.rows import Row
from bot.store.tables import IndexedObject

_KEY = ("gateway", "kind", "object_id")


def _statement(dialect: str) -> Any:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = IndexedObject.__table__
    statement = insert(table)
    # What a source does not know (empty) keeps what another told us.
    updates = {
        c.name: func.coalesce(statement.excluded[c.name], table.c[c.name])
        for c in table.columns
        if c.name not in _KEY
    }
    return statement.on_conflict_do_update(index_elements=_KEY, set_=updates)


async def upsert(session: AsyncSession, rows: Sequence[Row]) -> int:
    """Insert or refresh rows, one statement run for many (executemany); returns how many."""
    if not rows:
        return 0
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    # One row per object: a page may name an object twice (a refund and its charge).
    unique = list({tuple(r[k] for k in _KEY): r for r in rows}.values())
    await session.execute(_statement(dialect), unique)
    return len(unique)
