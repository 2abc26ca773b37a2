"""A request shown on Discord is redrawn there whoever decides it (issue 13).

The request is posted in a thread on the agent's message and in the approvals
channel; then it is approved in the shell, denied from Slack, expired or
finished by recovery. Each time Discord's decision hook edits both copies in
place (PATCH to each message) to show the new state. A decision made in
Discord redraws itself once, and a redraw that fails never undoes a decision.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from bot.actors import SYSTEM, Role
from bot.approvals.executor import recover
from bot.approvals.workflow import State, expire_due, get, now
from bot.services import Services
from bot.store.tables import ApprovalRow
from chargedesk_emulators.discord import Call, DiscordAPI
from tests.chat import test_discord
from tests.chat.test_discord import (
    AGENT,
    INTERNAL,
    MANAGER,
    Harness,
    custom_ids,
    refunded,
    running_bot,
    shown,
    stored_places,
)
from tests.conftest import person, say

pytestmark = [pytest.mark.storage, pytest.mark.approvals]

# The Discord tests' fake REST API; the bot below adds an approvals channel.
api = test_discord.api

APPROVALS = "1500000000000000009"
EDIT = "/channels/{channel_id}/messages/{message_id}"
POST = "/channels/{channel_id}/messages"


@pytest.fixture
async def discord_bot(services: Services, api: DiscordAPI) -> AsyncIterator[Harness]:
    """The Discord tests' bot, with an approvals channel: every request has two copies."""
    async with running_bot(services, api, approvals_channel=int(APPROVALS)) as harness:
        yield harness


async def posted_request(d: Harness) -> tuple[str, dict[str, dict[str, Any]]]:
    """A refund of 80.00 waiting for approval: its ID, and its copies as {channel: message}."""
    await d.command(
        AGENT, "refund", charge="ch_jane_1", amount="80", reason="duplicate charged twice"
    )
    posts = await d.api.wait_for("POST", POST, 2)
    approve = next(c for c in custom_ids(posts[0].body) if c.startswith("cd:approve:"))
    approval_id = approve.split(":")[2]
    rows = await stored_places(d.services, approval_id, 2)
    copies = {p.answer["channel_id"]: p.answer for p in posts}
    assert {(r.channel_id, r.message_id) for r in rows} == {
        (channel, message["id"]) for channel, message in copies.items()
    }
    assert APPROVALS in copies and INTERNAL not in copies  # the thread, and the approvals channel
    assert d.api.of("PATCH", EDIT) == []
    return approval_id, copies


async def redrawn(d: Harness, copies: dict[str, dict[str, Any]]) -> list[Call]:
    """The edits of every copy, once each copy was edited; they carry no buttons any more."""
    edits = await d.api.wait_for("PATCH", EDIT, len(copies))
    paths = {f"/channels/{channel}/messages/{message['id']}" for channel, message in copies.items()}
    assert {e.path for e in edits} == paths
    assert all(e.body["components"] == [] for e in edits)
    return edits


async def test_approved_in_the_shell_is_redrawn_on_discord(discord_bot, services):
    d = discord_bot
    approval_id, copies = await posted_request(d)
    reply = await say(
        services, person("maria", Role.manager, platform="shell"), f"approve {approval_id}"
    )
    assert reply.error is None and reply.approval.state == State.succeeded.value

    for edit in await redrawn(d, copies):
        assert ": done" in shown(edit.body) and "Maria (shell:maria)" in shown(edit.body)
    told = (await d.api.wait_for("POST", POST, 3))[2]  # the requester is told in the thread
    assert (
        told.body["content"].startswith(f"<@{AGENT}> ")
        and "decided by Maria" in told.body["content"]
    )
    assert await refunded(services, "ch_jane_1") == 8000


async def test_denied_from_slack_is_redrawn_on_discord(discord_bot, services):
    d = discord_bot
    approval_id, copies = await posted_request(d)
    slack = person("U0456DEF", Role.manager, platform="slack")
    reply = await say(services, slack, f"deny {approval_id} reason: not a duplicate")
    assert reply.error is None and reply.approval.state == State.denied.value

    for edit in await redrawn(d, copies):
        assert ": denied" in shown(edit.body) and "not a duplicate" in shown(edit.body)
    assert await refunded(services, "ch_jane_1") == 0


async def test_expired_is_redrawn_on_discord(discord_bot, services):
    d = discord_bot
    approval_id, copies = await posted_request(d)
    async with services.db.write() as s:
        await s.execute(
            update(ApprovalRow)
            .where(ApprovalRow.id == approval_id)
            .values(expires_at=now() - timedelta(minutes=1))
        )
    assert await expire_due(services, SYSTEM) == 1

    for edit in await redrawn(d, copies):
        assert "expired" in shown(edit.body).lower()
    assert (await get(services, approval_id)).state == State.expired


async def test_finished_by_recovery_is_redrawn_on_discord(discord_bot, services):
    d = discord_bot
    approval_id, copies = await posted_request(d)
    # A manager's process approved it and died while executing: recovery finishes it.
    async with services.db.write() as s:
        await s.execute(
            update(ApprovalRow)
            .where(ApprovalRow.id == approval_id)
            .values(state=State.executing.value, attempts=1)
        )
    assert [v.state for v in await recover(services, older_than=timedelta(0))] == [State.succeeded]

    for edit in await redrawn(d, copies):
        assert ": done" in shown(edit.body)
    assert await refunded(services, "ch_jane_1") == 8000


async def test_a_decision_in_discord_redraws_each_copy_once(discord_bot, services):
    d = discord_bot
    approval_id, copies = await posted_request(d)
    await d.click(MANAGER, copies[APPROVALS], f"cd:approve:{approval_id}", APPROVALS)
    await redrawn(d, copies)
    await d.api.wait_for("POST", POST, 3)  # the requester told, after the copies were redrawn
    assert len(d.api.of("PATCH", EDIT)) == len(copies)
    told = [c for c in d.api.of("POST", POST) if c.body["content"].startswith(f"<@{AGENT}> ")]
    assert len(told) == 1
    assert await refunded(services, "ch_jane_1") == 8000


async def test_a_failing_redraw_never_undoes_the_decision(discord_bot, services):
    d = discord_bot
    approval_id, copies = await posted_request(d)
    d.api.fail(EDIT)
    d.api.fail(POST)
    reply = await say(
        services, person("maria", Role.manager, platform="shell"), f"approve {approval_id}"
    )

    assert reply.error is None and reply.approval.state == State.succeeded.value
    await d.api.wait_for("PATCH", EDIT, len(copies))  # tried, refused by Discord
    assert (await get(services, approval_id)).state == State.succeeded
    assert await refunded(services, "ch_jane_1") == 8000
