"""What the sync tests of every gateway share: a sync killed between two pages, and the
index read back."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.gateways.base import Gateway
from bot.index.sync import Progress, sync_gateway
from bot.services import Services
from bot.store.tables import IndexedObject, SyncCursor


class Crash(Exception):
    """The process dying between two pages."""


async def sync_killed(
    services: Services, gateway: Gateway, *, charges: int = 0, when: Progress | None = None
) -> SyncCursor:
    """Sync `gateway` two objects a page until `charges` charges are written (or `when`
    raises Crash), dying there; the charge cursor it left, checked to be unfinished."""

    def die(name: str, kind: str, written: int) -> None:
        if kind == "charge" and written >= charges:
            raise Crash

    with pytest.raises(Crash):
        await sync_gateway(services, gateway, progress=when or die, page_size=2, pause=0.01)
    async with services.db.read() as session:
        cursor = await session.get(SyncCursor, (gateway.name, "charge"))
    assert cursor is not None and not cursor.done
    return cursor


async def indexed(services: Services, gateway: str, kind: str) -> dict[str, IndexedObject]:
    """The index's objects of one kind from one gateway, by object ID."""
    async with services.db.read() as session:
        found = await session.scalars(
            select(IndexedObject).where(IndexedObject.gateway == gateway, IndexedObject.kind == kind)
        )  # fmt: skip
        return {o.object_id: o for o in found}
