"""Data never pings anyone on Discord: every message says whom it may ping, and data is inert.

A customer named `@everyone`, a manager whose display name mentions a role,
and a reason that mentions a user reach Discord shown as typed: each message
the bot sends carries `allowed_mentions` that permit no @everyone/@here and no
role, and at most the one user the bot mentions itself (the requester).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from bot.store.tables import LedgerCustomer
from tests.chat.test_discord import (  # noqa: F401  (fixtures)
    AGENT,
    MANAGER,
    MANAGER_ROLE,
    NAMES,
    OTHER_AGENT,
    Harness,
    api,
    custom_ids,
    discord_bot,
    shown,
)

pytestmark = pytest.mark.storage

EVIL = f"@everyone @here <@&{MANAGER_ROLE}> <@{OTHER_AGENT}> <@!{OTHER_AGENT}>"
RAW = ("@everyone", "@here", f"<@&{MANAGER_ROLE}>", f"<@{OTHER_AGENT}>", f"<@!{OTHER_AGENT}>")


def sent(d: Harness) -> list[Any]:
    """Every message body the bot sent or edited: anything with content or embeds."""
    return [
        c
        for c in d.api.calls
        if c.method in ("POST", "PATCH")
        and isinstance(c.body, dict)
        and ("content" in c.body or "embeds" in c.body or "data" in c.body)
    ]


def body_of(call: Any) -> Any:
    """The message in a request: an interaction callback wraps it in `data`."""
    return call.body.get("data", call.body)


def assert_pings_at_most(d: Harness, allowed: set[str]) -> None:
    checked = 0
    for call in sent(d):
        body = body_of(call)
        if not isinstance(body, dict) or not ({"content", "embeds"} & set(body)):
            continue
        mentions = body.get("allowed_mentions")
        assert mentions is not None, (call.method, call.path)
        assert mentions.get("parse", []) == [], (call.path, mentions)
        assert {str(u) for u in mentions.get("users", [])} <= allowed and not mentions.get("roles")
        text = shown(body)
        for raw in RAW:
            assert raw not in text, (raw, call.path, text)
        checked += 1
    assert checked >= 5  # the card, the request, its thread card, the redraw, the requester told


async def test_hostile_names_and_reasons_ping_nobody(discord_bot, services, monkeypatch):  # noqa: F811
    d = discord_bot
    monkeypatch.setitem(NAMES, MANAGER, f"Maria {EVIL}")
    async with services.db.write() as s:
        await s.execute(
            update(LedgerCustomer)
            .where(LedgerCustomer.id == "cus_jane")
            .values(name=f"Jane {EVIL}")
        )
    payload = await d.command(AGENT, "lookup", query="jane.doe@example.com")
    card = await d.original(payload["token"])
    assert "Jane @\u200beveryone" in shown(card.body)
    mentions = card.body["allowed_mentions"]
    assert mentions["parse"] == [] and mentions.get("users", []) == []

    await d.command(AGENT, "refund", charge="ch_jane_1", amount="80", reason=f"duplicate {EVIL}")
    await d.api.wait_for("POST", "/channels/{channel_id}/messages/{message_id}/threads")
    posted = (await d.api.wait_for("POST", "/channels/{channel_id}/messages"))[0]
    assert posted.body["allowed_mentions"]["users"] == [int(AGENT)]  # "Requested by <@agent>"
    approve = next(c for c in custom_ids(posted.body) if c.startswith("cd:approve:"))
    await d.click(MANAGER, posted.answer, approve, posted.answer["channel_id"])
    told = (await d.api.wait_for("POST", "/channels/{channel_id}/messages", 2))[1]
    assert told.body["content"].startswith(f"<@{AGENT}> ✅ Refund of €80.00 on ch_jane_1: done")
    assert "decided by Maria @\u200beveryone @\u200bhere" in told.body["content"]
    assert told.body["allowed_mentions"] == {"parse": [], "users": [int(AGENT)]}
    assert_pings_at_most(d, {AGENT})
