"""A decision taken in another process redraws the copies on Slack and Discord.

`chargedesk serve` holds the Slack app and `chargedesk discord` the gateway
connection, while a manager approves in `chargedesk shell`. The copies are stored
in SQL and an edit needs only the bot token, so the shell's process redraws them
itself through each platform's REST API. Here the "other process" is a second set
of services opened on the same database and Redis with the chat tokens configured,
as `open_services` opens them for every process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bot.actors import Role
from bot.approvals.workflow import State, get
from bot.cards.billing import approval_card
from bot.services import Services
from bot.settings import DiscordSettings, Settings, SlackSettings
from bot.wiring import open_services
from tests.conftest import person, say
from tests.doors.door_contract import BIG_REFUND, refunded
from tests.doors.harnesses import discord_door, slack_door

pytestmark = [pytest.mark.storage, pytest.mark.approvals]


@asynccontextmanager
async def other_process(settings: Settings) -> AsyncIterator[Services]:
    """Services as `chargedesk shell` opens them: same stores, the chat doors as REST only."""
    services = await open_services(settings, policy=None, migrate=False)
    try:
        yield services
    finally:
        await services.close()


async def test_approved_in_another_process_is_redrawn_in_slack(services):
    async with slack_door(services) as door:
        approval_id = await door.request("agent", BIG_REFUND)
        elsewhere = services.settings.model_copy(
            update={
                "slack": SlackSettings(
                    bot_token=door.slack.api.token, base_url=services.settings.slack.base_url
                )
            }
        )
        async with other_process(elsewhere) as shell:
            assert door.slack.bot._decided not in shell.decision_hooks  # not the live app
            reply = await say(
                shell, person("maria", Role.manager, platform="shell"), f"approve {approval_id}"
            )
            assert reply.error is None and reply.approval.state == State.succeeded.value

        copies = await door.redrawn(approval_id)
        assert len(copies) == 2
        assert all(": done" in c.text and not c.buttons for c in copies)
    assert await refunded(services, "ch_jane_1") == 8000


async def test_denied_in_another_process_is_redrawn_on_discord(services):
    async with discord_door(services) as door:
        approval_id = await door.request("agent", BIG_REFUND)
        elsewhere = services.settings.model_copy(
            update={"discord": DiscordSettings(token="fake-token", api_base=door.d.api.base_url)}
        )
        async with other_process(elsewhere) as shell:
            reply = await say(
                shell,
                person("maria", Role.manager, platform="shell"),
                f"deny {approval_id} reason: not a duplicate",
            )
            assert reply.error is None and reply.approval.state == State.denied.value

        copies = await door.redrawn(approval_id)
        assert len(copies) == 2
        assert all(": denied" in c.text and not c.buttons for c in copies)
    assert await refunded(services, "ch_jane_1") == 0


async def test_a_live_door_takes_over_from_the_rest_only_door_of_its_platform(services):
    from bot.chat.slack.adapter import SlackBot

    configured = services.settings.model_copy(
        update={"slack": SlackSettings(bot_token="xoxb-test", signing_secret="secret")}
    )
    async with other_process(configured) as serve:

        def slack_doors() -> list[object]:
            return [
                h.__self__
                for h in serve.decision_hooks
                if getattr(getattr(h, "__self__", None), "platform", None) == "slack"
            ]

        (rest_only,) = slack_doors()  # every process redraws Slack copies
        live = SlackBot(configured.slack, alert_seconds=0)
        live.bind(serve)  # what `chargedesk serve` does with its app
        assert slack_doors() == [live]  # one Slack door redraws: each copy is edited once
        assert rest_only is not live
        await live.aclose()


@pytest.mark.parametrize("door_of", [slack_door, discord_door], ids=["slack", "discord"])
async def test_a_request_another_door_queued_here_is_redrawn_after_its_decision(services, door_of):
    # Intercom's inbox has no approvals channel of its own: it queues the request card
    # for the chat approvals channels, where that platform's bot posts it.
    async with door_of(services) as door:
        asked = await say(services, person("sam", Role.agent, platform="intercom"), BIG_REFUND)
        assert asked.approval is not None and asked.approval.state == State.pending.value
        view = await get(services, asked.approval.id)
        posted = await door.deliver_alert(approval_card(view, locale=services.settings.locale))
        assert any(view.id in b for shown in posted for b in shown.buttons)  # Approve / Deny

        decided = await say(
            services, person("maria", Role.manager, platform="shell"), f"approve {view.id}"
        )
        assert decided.error is None and decided.approval.state == State.succeeded.value

        copies = await door.redrawn(view.id)
        assert len(copies) == 1
        assert ": done" in copies[0].text and not copies[0].buttons
    assert await refunded(services, "ch_jane_1") == 8000
