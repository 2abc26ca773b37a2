"""A Discord interaction delivered again (same interaction ID) runs nothing and answers nothing.

Discord gives every interaction an ID; the gateway can deliver one again (a
resumed session replays what it thinks we missed). Each scenario feeds the very
same INTERACTION_CREATE twice, one after the other and at once, and checks the
money moved once and the copy was recognised, also after Redis lost its keys.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.services import Services
from bot.store.tables import ApprovalRow
from tests.chat import test_discord
from tests.chat.test_discord import AGENT, CALLBACK, INTERNAL, Harness, lookup_card, refunded

pytestmark = [pytest.mark.storage, pytest.mark.approvals]

# The Discord tests' fixtures: discord.py logged in against the fake REST API.
api, discord_bot = test_discord.api, test_discord.discord_bot

DROPPED = "seen before: dropped"
GONE = "replayed after its Redis key was gone: dropped"


async def dropped(caplog: pytest.LogCaptureFixture, text: str, count: int) -> None:
    """Wait (bounded) until the bot has said `count` copies were recognised."""
    for _ in range(500):  # 5 s
        if caplog.text.count(text) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} x {text!r} in the log")


async def requests(services: Services) -> int:
    async with services.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(ApprovalRow)) or 0)


async def forget_redis(services: Services) -> None:
    async for key in services.redis.scan_iter(match=f"{services.settings.redis_prefix}*"):
        await services.redis.delete(key)


def callbacks(d: Harness, payload: dict[str, Any]) -> int:
    return len(d.api.callbacks(str(payload["id"])))


async def test_a_slash_command_interaction_delivered_twice_refunds_once(discord_bot, caplog):
    d = discord_bot
    payload = await d.command(
        AGENT, "refund", charge="ch_jane_1", amount="10", reason="goodwill late parcel"
    )
    await d.original(payload["token"])
    d.feed(payload)
    await dropped(caplog, DROPPED, 1)
    await forget_redis(d.services)
    d.feed(payload)
    await dropped(caplog, GONE, 1)
    assert await refunded(d.services, "ch_jane_1") == 1000
    assert await requests(d.services) == 1 and callbacks(d, payload) == 1


async def test_the_same_interaction_at_once_refunds_once(discord_bot, caplog):
    d = discord_bot
    payload = await d.command(
        AGENT, "refund", charge="ch_jane_1", amount="10", reason="goodwill late parcel"
    )
    d.feed(payload)
    d.feed(payload)
    await d.original(payload["token"])
    await dropped(caplog, DROPPED, 2)
    assert await refunded(d.services, "ch_jane_1") == 1000
    assert await requests(d.services) == 1 and callbacks(d, payload) == 1


async def test_a_replayed_modal_submission_refunds_once(discord_bot, caplog):
    d = discord_bot
    card = await lookup_card(d)
    click = await d.click(AGENT, card.answer, "cd:refund:ledger:ch_jane_1", INTERNAL)
    modal = (await d.callback(click["id"]))["data"]
    submitted = await d.submit(AGENT, modal, INTERNAL, card.answer,
                               amount="10", reason_code="goodwill", reason_text="late parcel")  # fmt: skip
    await d.original(submitted["token"])
    d.feed(submitted)
    await dropped(caplog, DROPPED, 1)
    # A replayed click opens no second modal either.
    d.feed(click)
    await dropped(caplog, DROPPED, 2)
    assert await refunded(d.services, "ch_jane_1") == 1000
    assert await requests(d.services) == 1
    assert callbacks(d, submitted) == 1 and callbacks(d, click) == 1
    assert len(d.api.of("POST", CALLBACK)) == 3  # the lookup, the click, the submission
