"""The Alembic migrations build exactly the schema the code expects."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bot.store.db import Database
from bot.store.tables import Base

pytestmark = pytest.mark.storage


async def test_migrations_match_the_tables(database_url):
    db = Database(database_url)
    await db.migrate()
    await db.migrate()  # idempotent

    def diff(conn):  # type: ignore[no-untyped-def]
        return compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata
        )

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    await db.close()
