"""A signed Slack request delivered again runs nothing: money moves once per delivery.

Slack signs a request for five minutes, and a proxy (or anyone who saw it) can
send the very same bytes again. Each scenario posts one signed request several
times, one after the other and all at once, and checks the money moved once,
the bot answered once, and the copies were recognised as such, also after
Redis lost its keys (the SQL row is the backstop).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from bot.services import Services
from bot.store.tables import ApprovalRow, Delivery
from chargedesk_emulators.slack import Call
from tests.chat import test_slack
from tests.chat.test_slack import (
    AGENT,
    INTERNAL,
    JANE,
    TEAM_ID,
    Slack,
    button,
    fill,
    refunded,
    trigger,
)

pytestmark = [pytest.mark.storage, pytest.mark.approvals]

# The Slack tests' fixtures: the app behind signed requests, and the fake Web API.
api, slack = test_slack.api, test_slack.slack

FORM = "application/x-www-form-urlencoded"


class Signed:
    """One request as Slack signed it, to be delivered as many times as a replay would."""

    def __init__(self, slack: Slack, body: str) -> None:
        self.slack, self.body = slack, body
        self.headers = {"Content-Type": FORM, **slack.headers(body)}

    async def deliver(self) -> httpx.Response:
        return await self.slack.http.post("/slack/events", content=self.body, headers=self.headers)


def slash(slack: Slack, text: str, user: str = AGENT) -> Signed:
    body = urlencode({
        "token": "legacy", "team_id": TEAM_ID, "team_domain": "chargedesk-test", "channel_id": INTERNAL,
        "channel_name": "billing", "user_id": user, "user_name": user.lower(), "command": "/billing",
        "text": text, "api_app_id": "A0CHARGE01", "is_enterprise_install": "false",
        "response_url": slack.api.response_url(), "trigger_id": trigger(),
    })  # fmt: skip
    return Signed(slack, body)


def submission(slack: Slack, view: dict[str, Any], user: str = AGENT, **values: str) -> Signed:
    payload = {
        "type": "view_submission", "api_app_id": "A0CHARGE01", "token": "legacy", "trigger_id": trigger(),
        "team": {"id": TEAM_ID, "domain": "chargedesk-test"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
        "view": {**view, "state": {"values": fill(view, values)}}, "response_urls": [],
    }  # fmt: skip
    return Signed(slack, urlencode({"payload": json.dumps(payload)}))


async def requests(services: Services) -> int:
    async with services.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(ApprovalRow)) or 0)


def answers(slack: Slack) -> list[Call]:
    """Everything the bot said: public messages and private ones."""
    return slack.api.of("chat.postMessage") + slack.api.of("chat.postEphemeral")


async def forget_redis(services: Services) -> None:
    """As after a Redis flush or failover: every key of this deployment is gone."""
    async for key in services.redis.scan_iter(match=f"{services.settings.redis_prefix}*"):
        await services.redis.delete(key)


async def test_a_slash_command_delivered_three_times_refunds_once(slack, services, caplog):
    request = slash(slack, "refund ch_jane_1 10 reason: goodwill late parcel")
    for _ in range(3):
        assert (await request.deliver()).status_code == 200
        await slack.settle()
    assert await refunded(services, "ch_jane_1") == 1000
    assert await requests(services) == 1
    # Answered once: the copies are dropped, not asked "is this a duplicate?".
    assert len(answers(slack)) == 1 and "done" in answers(slack)[0].params["text"]
    assert caplog.text.count("seen before: dropped") == 2


async def test_a_slash_command_delivered_three_times_at_once_refunds_once(slack, services):
    request = slash(slack, "refund ch_jane_1 10 reason: goodwill late parcel")
    statuses = await asyncio.gather(*(request.deliver() for _ in range(3)))
    assert [r.status_code for r in statuses] == [200, 200, 200]
    await slack.settle()
    assert await refunded(services, "ch_jane_1") == 1000
    assert await requests(services) == 1 and len(answers(slack)) == 1


async def test_the_sql_row_holds_when_redis_forgot_the_delivery(slack, services, caplog):
    request = slash(slack, "refund ch_jane_1 10 reason: goodwill late parcel")
    await request.deliver()
    await slack.settle()
    await forget_redis(services)
    await request.deliver()
    await slack.settle()
    assert await refunded(services, "ch_jane_1") == 1000
    assert await requests(services) == 1 and len(answers(slack)) == 1
    assert "replayed after its Redis key was gone: dropped" in caplog.text
    async with services.db.read() as s:
        rows = list(await s.scalars(select(Delivery)))
    assert [(r.platform, r.kind) for r in rows] == [("slack", "command")]


async def test_a_replayed_modal_submission_refunds_once(slack, services):
    await slack.command(AGENT, f"lookup {JANE}")
    card = (await slack.api.wait_for("chat.postMessage"))[0]
    await slack.click(AGENT, card, button(card, "refund ledger:ch_jane_1"))
    view = (await slack.api.wait_for("views.open"))[0].answer["view"]
    sent = submission(slack, view, amount="10", reason_code="goodwill", reason_text="late parcel")
    first = await sent.deliver()
    assert first.status_code == 200 and first.text == ""  # the modal closes
    await slack.settle()
    replays = await asyncio.gather(sent.deliver(), sent.deliver())
    await slack.settle()
    assert [r.status_code for r in replays] == [200, 200]
    await forget_redis(services)
    await sent.deliver()
    await slack.settle()
    assert await refunded(services, "ch_jane_1") == 1000
    assert await requests(services) == 1
    # The copies were dropped unanswered, not asked whether they are a duplicate.
    assert slack.api.of("chat.postEphemeral") == []


async def test_a_modal_sent_again_after_a_refusal_still_runs(slack, services):
    # Same view (id and hash), other values: another signed request, not a replay.
    await slack.command(AGENT, f"lookup {JANE}")
    card = (await slack.api.wait_for("chat.postMessage"))[0]
    await slack.click(AGENT, card, button(card, "refund ledger:ch_jane_1"))
    view = (await slack.api.wait_for("views.open"))[0].answer["view"]
    refused = await submission(slack, view, amount="500", reason_text="charged twice").deliver()
    assert refused.json()["response_action"] == "errors"
    await submission(slack, view, amount="10", reason_code="goodwill", reason_text="x y").deliver()
    await slack.settle()
    assert await refunded(services, "ch_jane_1") == 1000


async def test_a_replayed_again_confirmation_refunds_once_more_only(slack, services):
    # `again` skips the duplicate question on purpose: only the delivery check stops its replay.
    await slash(slack, "refund ch_jane_1 10 reason: goodwill late parcel").deliver()
    await slack.settle()
    await slash(slack, "refund ch_jane_1 10 reason: goodwill late parcel").deliver()
    asked = (await slack.api.wait_for("chat.postEphemeral"))[0]
    assert "this looks like a duplicate of apr_" in asked.params["text"]
    again = button(asked, "again apr_")
    confirmed = slash(slack, again["value"])
    for _ in range(3):
        await confirmed.deliver()
    await slack.settle()
    assert await refunded(services, "ch_jane_1") == 2000
    assert await requests(services) == 2
