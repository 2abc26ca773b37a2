"""One chat delivery runs once: Redis answers first, the `deliveries` row holds without it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot import deliveries
from bot.store.tables import Delivery

pytestmark = pytest.mark.storage


async def test_a_delivery_is_first_once_however_often_and_however_late(services):
    assert await deliveries.first(services, "slack", "sig-1", "command")
    assert not await deliveries.first(services, "slack", "sig-1", "command")
    assert await deliveries.first(services, "discord", "sig-1", "refund")  # platforms apart
    async for key in services.redis.scan_iter(match=f"{services.settings.redis_prefix}*"):
        await services.redis.delete(key)
    assert not await deliveries.first(services, "slack", "sig-1", "command")


async def test_copies_at_the_same_moment_let_one_through(services):
    claims = await asyncio.gather(*(deliveries.first(services, "slack", "sig-2") for _ in range(8)))
    assert sorted(claims) == [False] * 7 + [True]


async def test_rows_no_platform_would_resend_are_pruned(services):
    old = datetime.now(UTC) - deliveries.KEEP - timedelta(minutes=1)
    async with services.db.write() as s:
        s.add(Delivery(platform="slack", delivery_id="old", kind="command", at=old))
    assert await deliveries.first(services, "slack", "new", "command")
    async with services.db.read() as s:
        kept = list(await s.scalars(select(Delivery.delivery_id)))
    assert kept == ["new"]
