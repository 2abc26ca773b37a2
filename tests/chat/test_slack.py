"""The Slack app as Slack drives it: signed requests into the ASGI app, a fake Slack Web API.

Each scenario posts what Slack would post to /slack/events (slash commands,
button clicks, modal submissions, Events API deliveries), signed with the
signing secret, and reads what the bot did from the calls the fake Web API
recorded. The work runs after the ack, in lazy listeners: tests wait for the
calls with the fake's bounded poll, or for the bot to be idle, never a sleep.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import jsonschema
import pytest
import yaml
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select, update

from bot.approvals.workflow import now
from bot.audit.log import AuditFilter, query
from bot.chat.slack.adapter import SlackBot, find_references
from bot.gateways.base import Gateway, LookupQuery
from bot.gateways.registry import Gateways
from bot.models import GatewayProfile
from bot.services import Services
from bot.settings import SlackSettings
from bot.store.tables import ApprovalRow, ChatMessage, LedgerCharge, LedgerCustomer
from bot.web import create_app
from chargedesk_emulators.slack import DATA, TEAM_ID, Call, SlackAPI, block_kit_problems, slack_api
from tests.chat.mailbox import code_in_outbox
from tests.conftest import REPO, refunded

pytestmark = pytest.mark.storage

SECRET = "5b2e0f0c9d8a7b6c5d4e3f2a1b0c9d8e"
AGENT, OTHER_AGENT = "UAGENT0001", "UAGENT0002"
MANAGER, OTHER_MANAGER = "UMANAGER01", "UMANAGER02"
OUTSIDER, NOBODY = "UOUTSIDE01", "UNOBODY001"
CUSTOMER, CUSTOMER_TEAM = "UJANECUST1", "T0ACMECORP"  # Jane, from a Slack Connect partner
INTERNAL, HELPDESK, SHARED = "C0INTERNAL1", "C0HELPDESK1", "C0SHARED001"
APPROVALS, SHARED_HELPDESK, UNKNOWN = "C0APPROVAL1", "C0PARTNER01", "C0UNKNOWN01"
MANAGERS_GROUP = "S0MANAGERS1"
JANE = "jane.doe@example.com"


def populate(fake: SlackAPI) -> None:
    """The test workspace: its channels, people and the managers' user group."""
    fake.channel(INTERNAL, "billing-team", private=True)
    fake.channel(HELPDESK, "helpdesk")
    fake.channel(SHARED, "acme-support", ext_shared=True)
    fake.channel(APPROVALS, "billing-approvals", private=True)
    fake.channel(SHARED_HELPDESK, "partner-tickets", shared=True)
    for user, name in ((AGENT, "Alex"), (OTHER_AGENT, "Sam"), (MANAGER, "Maria"),
                       (OTHER_MANAGER, "Mark"), (NOBODY, "Nora")):  # fmt: skip
        fake.user(user, name)
    fake.user(OUTSIDER, "Olga External", team_id="T0OTHERORG", stranger=True)
    fake.user(CUSTOMER, "Jane Doe", team_id=CUSTOMER_TEAM, stranger=True)
    fake.usergroup(MANAGERS_GROUP, [MANAGER, OTHER_MANAGER])


@pytest.fixture
def api() -> Iterator[SlackAPI]:
    with slack_api() as fake:
        populate(fake)
        yield fake
        assert fake.problems == [], "the fake Slack API saw requests Slack would refuse"


@dataclass
class Slack:
    """Posts signed Slack requests into the app and reads what it did."""

    http: httpx.AsyncClient
    api: SlackAPI
    bot: SlackBot
    services: Services

    def headers(self, body: str, *, timestamp: int | None = None, **extra: str) -> dict[str, str]:
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        signature = SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body)
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature, **extra}

    async def post(self, body: str, content_type: str, **headers: str) -> httpx.Response:
        sent = {"Content-Type": content_type, **self.headers(body), **headers}
        return await self.http.post("/slack/events", content=body, headers=sent)

    async def command(
        self, user: str, text: str, channel: str = INTERNAL, team: str = TEAM_ID
    ) -> httpx.Response:
        body = urlencode({
            "token": "legacy", "team_id": team, "team_domain": "chargedesk-test", "channel_id": channel,
            "channel_name": "billing", "user_id": user, "user_name": user.lower(), "command": "/billing",
            "text": text, "api_app_id": "A0CHARGE01", "is_enterprise_install": "false",
            "response_url": self.api.response_url(), "trigger_id": trigger(),
        })  # fmt: skip
        return await self.post(body, "application/x-www-form-urlencoded")

    async def interact(self, payload: dict[str, Any]) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(body, "application/x-www-form-urlencoded")

    async def click(self, user: str, posted: Call, button: dict[str, Any]) -> httpx.Response:
        """Click `button` on the message the bot posted (`posted`: its chat.postMessage)."""
        channel, ts = posted.params["channel"], posted.answer["ts"]
        message = {"type": "message", "ts": ts, "text": posted.params.get("text", ""),
                   "blocks": posted.params.get("blocks", [])}  # fmt: skip
        if posted.params.get("thread_ts"):
            message["thread_ts"] = posted.params["thread_ts"]
        return await self.interact({
            "type": "block_actions", "api_app_id": "A0CHARGE01", "token": "legacy",
            "team": {"id": TEAM_ID, "domain": "chargedesk-test"},
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
            "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
            "trigger_id": trigger(), "channel": {"id": channel, "name": "billing"}, "message": message,
            "response_url": self.api.response_url(),
            "actions": [{**button, "block_id": "b1", "action_ts": f"{time.time():.6f}"}],
        })  # fmt: skip

    async def submit(self, user: str, view: dict[str, Any], **values: str) -> httpx.Response:
        """Submit an opened modal with `values` typed over what it was prefilled with."""
        return await self.interact({
            "type": "view_submission", "api_app_id": "A0CHARGE01", "token": "legacy", "trigger_id": trigger(),
            "team": {"id": TEAM_ID, "domain": "chargedesk-test"},
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
            "view": {**view, "state": {"values": fill(view, values)}}, "response_urls": [],
        })  # fmt: skip

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None,
        shared: bool = False,
    ) -> httpx.Response:  # fmt: skip
        envelope = {
            "token": "legacy", "team_id": TEAM_ID, "api_app_id": "A0CHARGE01", "event": event,
            "type": "event_callback", "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(time.time()), "authed_users": ["U0CHARGEBOT"],
            "is_ext_shared_channel": shared,
        }  # fmt: skip
        jsonschema.validate(envelope, WRAPPER)  # our deliveries look like Slack's
        extra = (
            {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
            if retry
            else {}
        )
        return await self.post(json.dumps(envelope), "application/json", **extra)

    async def settle(self) -> None:
        await self.bot.idle()


WRAPPER = json.loads((DATA / "event_wrapper_schema.json").read_text())


def trigger() -> str:
    return f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**10)}.{secrets.token_hex(8)}"


def fill(view: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """The `state.values` Slack sends for a modal: typed values over the prefilled ones."""
    state: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element = block["element"]
        name = element["action_id"]
        if element["type"] == "static_select":
            chosen = values.get(name)
            option = next((o for o in element["options"] if o["value"] == chosen), None)
            state[block["block_id"]] = {name: {"type": "static_select",
                                               "selected_option": option or element.get("initial_option")}}  # fmt: skip
        else:
            state[block["block_id"]] = {
                name: {
                    "type": "plain_text_input",
                    "value": values.get(name, element.get("initial_value")),
                }
            }
    return state


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for block in blocks:
        if "accessory" in block:
            found.append(block["accessory"])
        if block["type"] == "actions":
            found += block["elements"]
    return [b for b in found if b.get("type") == "button"]


def button(call: Call, value_prefix: str) -> dict[str, Any]:
    return next(b for b in buttons(call.params["blocks"]) if b["value"].startswith(value_prefix))


def texts(blocks: list[dict[str, Any]]) -> str:
    """Everything a person reads in these blocks, joined."""
    out = []
    for block in blocks:
        for part in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            if isinstance(part, dict) and isinstance(part.get("text"), (str, dict)):
                out.append(part["text"] if isinstance(part["text"], str) else part["text"]["text"])
    return "\n".join(out)


def in_channel(channel: str, *, thread: str | None = None) -> Any:
    def match(call: Call) -> bool:
        return call.params["channel"] == channel and (
            thread is None or call.params.get("thread_ts") == thread
        )

    return match


@pytest.fixture
async def slack(services: Services, api: SlackAPI) -> AsyncIterator[Slack]:
    async with running_slack(services, api) as harness:
        yield harness


@asynccontextmanager
async def running_slack(services: Services, api: SlackAPI) -> AsyncIterator[Slack]:
    """The app on the fake Web API, mounted as `chargedesk serve` mounts it, with the test config."""
    services.settings.slack = SlackSettings(
        bot_token=api.token, signing_secret=SECRET, base_url=f"{api.base_url}/api/",
        agents=[AGENT, OTHER_AGENT, OUTSIDER], managers=[MANAGERS_GROUP],
        helpdesk_channels=[HELPDESK, SHARED_HELPDESK], approvals_channel=APPROVALS,
    )  # fmt: skip
    app = create_app(services.settings, services)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as http,
    ):
        yield Slack(http, api, app.state.slack, services)


async def pending_refund(slack: Slack, user: str = AGENT) -> tuple[str, Call]:
    """A refund above the requester's limit, by slash command: its ID and the thread's card."""
    await slack.command(user, "refund ch_jane_1 80 reason: duplicate charged twice")
    card = (
        await slack.api.wait_for(
            "chat.postMessage",
            match=lambda c: c.params["channel"] == INTERNAL and "thread_ts" in c.params,
        )
    )[0]
    await slack.settle()  # posted everywhere (and stored) before anyone clicks
    approve = button(card, "approve ")
    return approve["value"].split()[1], card


# --- lookups ----------------------------------------------------------------------------


async def test_lookup_answers_after_the_ack_with_a_block_kit_card(slack):
    response = await slack.command(AGENT, f"lookup {JANE}")
    assert response.status_code == 200 and response.text == ""  # acked, nothing said yet
    posted = (await slack.api.wait_for("chat.postMessage"))[0]
    blocks = posted.params["blocks"]
    assert posted.params["channel"] == INTERNAL
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": ":red_circle: Jane Doe", "emoji": True}}  # fmt: skip
    shown = texts(blocks)
    assert "*Lifetime value*" in shown and "*Gateways*\nledger" in shown
    assert ":red_circle: Disputes (1)" in shown and "`dp_jane_1`" in shown
    assert "`ch_jane_2` · " in shown and "€19.00" in shown and "partially_refunded" in shown
    assert "`sub_jane_pro`" in shown and "⚠ overdue" in shown
    values = [b["value"] for b in buttons(blocks)]
    assert "refund ledger:ch_jane_1 reason: " in values
    assert (
        "capture ledger:ch_jane_auth reason: " in values
        and "void ledger:ch_jane_auth reason: " in values
    )
    assert "cancel ledger:sub_jane_pro period-end reason: " in values
    # The per-object button sits beside the object's own row.
    row = next(
        b
        for b in blocks
        if b.get("accessory", {}).get("value", "").startswith("refund ledger:ch_jane_1")
    )
    assert row["text"]["text"].startswith("`ch_jane_1` · ")
    assert block_kit_problems(blocks) == []


async def test_the_ack_never_waits_for_a_gateway(services, slack):
    release = asyncio.Event()

    class Stuck(Gateway):
        name = "stuck"

        async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
            await release.wait()  # answers only once the test has its ack
            return []

    services.gateways = Gateways([*services.gateways, Stuck()], timeout=30)
    # If the ack waited for the lookup, this request would never answer.
    response = await asyncio.wait_for(slack.command(AGENT, f"lookup {JANE}"), timeout=10)
    assert response.status_code == 200 and slack.api.of("chat.postMessage") == []
    release.set()
    await slack.api.wait_for("chat.postMessage")


async def test_errors_are_private_to_the_person_who_typed(slack):
    await slack.command(AGENT, "lookup nobody@example.com")
    said = (await slack.api.wait_for("chat.postEphemeral"))[0]
    assert said.params["user"] == AGENT and "no customer matches" in said.params["text"]
    await slack.settle()
    assert slack.api.of("chat.postMessage") == []


# --- refunds, approvals -----------------------------------------------------------------


async def test_refund_button_modal_thread_and_manager_approval(slack, services):
    await slack.command(AGENT, f"lookup {JANE}")
    card = (await slack.api.wait_for("chat.postMessage"))[0]
    await slack.click(AGENT, card, button(card, "refund ledger:ch_jane_1"))
    view = (await slack.api.wait_for("views.open"))[0].answer["view"]
    amount = next(b for b in view["blocks"] if b["block_id"] == "amount")
    assert amount["element"]["initial_value"] == "120.00 EUR"  # all that is refundable
    codes = next(b for b in view["blocks"] if b["block_id"] == "reason_code")["element"]
    assert [o["value"] for o in codes["options"]][:2] == ["duplicate", "fraudulent"]

    # A refusal that belongs to a field goes back into the modal, and nothing is requested.
    too_much = await slack.submit(AGENT, view, amount="500", reason_text="charged twice")
    assert too_much.json()["response_action"] == "errors"
    assert "only €120.00" in too_much.json()["errors"]["amount"]

    closed = await slack.submit(
        AGENT, view, amount="80", reason_code="duplicate", reason_text="charged twice"
    )
    assert closed.status_code == 200 and closed.text == ""  # the modal closes
    thread = (await slack.api.wait_for("chat.postMessage", match=in_channel(INTERNAL, thread=card.answer["ts"])))[0]  # fmt: skip
    copy = (await slack.api.wait_for("chat.postMessage", match=in_channel(APPROVALS)))[0]
    assert "waiting for approval" in texts(thread.params["blocks"])
    assert f"<@{AGENT}>" in texts(copy.params["blocks"])
    approval_id = button(thread, "approve ")["value"].split()[1]
    await slack.settle()  # each message is stored once Slack has answered with its ts
    async with services.db.read() as s:
        shown = list(
            await s.scalars(select(ChatMessage).where(ChatMessage.approval_id == approval_id))
        )
    assert {(m.channel_id, m.message_id) for m in shown} == {
        (INTERNAL, thread.answer["ts"]),
        (APPROVALS, copy.answer["ts"]),
    }
    assert await refunded(services, "ch_jane_1") == 0

    await slack.click(MANAGER, thread, button(thread, "approve "))
    updates = await slack.api.wait_for("chat.update", 2)
    assert {(u.params["channel"], u.params["ts"]) for u in updates} == {
        (INTERNAL, thread.answer["ts"]),
        (APPROVALS, copy.answer["ts"]),
    }
    for u in updates:
        drawn = texts(u.params["blocks"])
        assert ": done" in drawn and f"*Approved by*\nMaria (slack:{MANAGER}) at " in drawn
        assert "*Result*\nre_" in drawn and buttons(u.params["blocks"]) == []
    told = (await slack.api.wait_for("chat.postMessage", match=lambda c: c.params.get("text", "").startswith(f"<@{AGENT}>")))[0]  # fmt: skip
    assert (
        told.params["thread_ts"] == card.answer["ts"] and "decided by Maria" in told.params["text"]
    )
    assert await refunded(services, "ch_jane_1") == 8000
    entries = await query(services.db, AuditFilter(approval_id=approval_id))
    assert [(e.outcome, e.actor_id) for e in entries if e.outcome in ("approved", "succeeded")] == [
        ("succeeded", MANAGER),
        ("approved", MANAGER),
    ]


async def test_slow_answers_close_the_modal_and_follow_in_the_channel(slack):
    # As if the gateway were slow: nothing is waited for within Slack's three seconds.
    slack.bot.form_budget = slack.bot.modal_budget = 0.0
    await slack.command(AGENT, f"lookup {JANE}")
    card = (await slack.api.wait_for("chat.postMessage"))[0]
    await slack.click(AGENT, card, button(card, "refund ledger:ch_jane_1"))
    loading = (await slack.api.wait_for("views.open"))[0]
    assert "Loading" in texts(loading.params["view"]["blocks"])
    filled = (await slack.api.wait_for("views.update"))[0]
    assert filled.params["view_id"] == loading.answer["view"]["id"]
    view = filled.answer["view"]
    closed = await slack.submit(AGENT, view, amount="500", reason_text="charged twice")
    assert closed.status_code == 200 and closed.text == ""
    said = (await slack.api.wait_for("chat.postEphemeral"))[0]
    assert said.params["user"] == AGENT and "only €120.00" in said.params["text"]


async def test_slash_command_request_threads_under_the_agents_line(slack):
    approval_id, card = await pending_refund(slack)
    asked = next(
        c for c in slack.api.of("chat.postMessage") if c.answer["ts"] == card.params["thread_ts"]
    )
    assert (
        asked.params["channel"] == INTERNAL and f"<@{AGENT}> asked: Refund" in asked.params["text"]
    )
    assert approval_id.startswith("apr_")


async def test_requester_and_non_manager_cannot_approve(slack, services):
    services.policy.refund.limits.pop("manager", None)  # a manager who needs another manager
    approval_id, card = await pending_refund(slack, MANAGER)
    await slack.click(MANAGER, card, button(card, "approve "))
    own = (await slack.api.wait_for("chat.postEphemeral"))[0]
    assert (
        own.params["user"] == MANAGER
        and "cannot approve or deny your own request" in own.params["text"]
    )
    await slack.click(OTHER_AGENT, card, button(card, "approve "))
    other = (await slack.api.wait_for("chat.postEphemeral", 2))[1]
    assert (
        other.params["user"] == OTHER_AGENT
        and "approve needs the manager role" in other.params["text"]
    )
    await slack.click(MANAGER, card, button(card, "deny "))  # refused before any modal opens
    deny = (await slack.api.wait_for("chat.postEphemeral", 3))[2]
    assert "your own request" in deny.params["text"]
    await slack.settle()
    assert slack.api.of("views.open") == [] and slack.api.of("chat.update") == []
    assert await refunded(services, "ch_jane_1") == 0
    async with services.db.read() as s:
        assert (
            await s.scalar(select(ApprovalRow.state).where(ApprovalRow.id == approval_id))
            == "pending"
        )


async def test_double_clicks_and_two_managers_at_once_execute_once(slack, services):
    approval_id, card = await pending_refund(slack)
    approve = button(card, "approve ")
    await asyncio.gather(
        slack.click(MANAGER, card, approve),
        slack.click(MANAGER, card, approve),
        slack.click(OTHER_MANAGER, card, approve),
    )
    await slack.settle()
    assert await refunded(services, "ch_jane_1") == 8000
    entries = await query(services.db, AuditFilter(approval_id=approval_id))
    assert [e.outcome for e in entries].count("succeeded") == 1
    refusals = slack.api.of("chat.postEphemeral")
    assert len(refusals) == 2 and all("already" in r.params["text"] for r in refusals)
    assert len(slack.api.of("chat.update")) == 2  # one redraw of the thread card and its copy


async def test_denied_through_the_modal_never_executes(slack, services):
    _, card = await pending_refund(slack)
    await slack.click(MANAGER, card, button(card, "deny "))
    view = (await slack.api.wait_for("views.open"))[0].answer["view"]
    short = await slack.submit(MANAGER, view, reason="no")
    assert "at least 3 characters" in short.json()["errors"]["reason"]
    await slack.submit(MANAGER, view, reason="the customer was refunded by bank transfer")
    updates = await slack.api.wait_for("chat.update", 2)
    assert all(": denied" in texts(u.params["blocks"]) for u in updates)
    assert "bank transfer" in texts(updates[0].params["blocks"])
    await slack.click(OTHER_MANAGER, card, button(card, "approve "))  # a stale button
    late = (await slack.api.wait_for("chat.postEphemeral"))[0]
    assert late.params["user"] == OTHER_MANAGER and "already denied" in late.params["text"]
    await slack.settle()
    assert await refunded(services, "ch_jane_1") == 0


async def test_expired_requests_never_execute(slack, services):
    approval_id, card = await pending_refund(slack)
    async with services.db.write() as s:
        await s.execute(
            update(ApprovalRow).where(ApprovalRow.id == approval_id).values(expires_at=now() - timedelta(minutes=1))
        )  # fmt: skip
    await slack.click(MANAGER, card, button(card, "approve "))
    refused = (await slack.api.wait_for("chat.postEphemeral"))[0]
    assert "expired" in refused.params["text"] and "will not run" in refused.params["text"]
    updates = await slack.api.wait_for("chat.update", 2)
    assert all(": expired" in texts(u.params["blocks"]) for u in updates)
    await slack.settle()
    assert await refunded(services, "ch_jane_1") == 0


async def test_a_copy_posted_after_the_decision_is_redrawn_too(slack, services):
    # The approvals channel copy is still on its way when a manager approves in the thread.
    gate = slack.api.hold("chat.postMessage", lambda params: params["channel"] == APPROVALS)
    await slack.command(AGENT, "refund ch_jane_1 80 reason: duplicate charged twice")
    card = (await slack.api.wait_for("chat.postMessage", match=lambda c: "thread_ts" in c.params))[0]  # fmt: skip
    await slack.click(MANAGER, card, button(card, "approve "))
    first = (await slack.api.wait_for("chat.update"))[0]
    assert first.params["channel"] == INTERNAL and ": done" in texts(first.params["blocks"])
    gate.set()
    copy = (await slack.api.wait_for("chat.postMessage", match=in_channel(APPROVALS)))[0]
    late = (await slack.api.wait_for("chat.update", match=in_channel(APPROVALS)))[0]
    assert late.params["ts"] == copy.answer["ts"] and ": done" in texts(late.params["blocks"])
    assert await refunded(services, "ch_jane_1") == 8000


async def test_typed_approve_redraws_the_cards_too(slack, services):
    approval_id, _ = await pending_refund(slack)
    await slack.command(MANAGER, f"approve {approval_id}")
    updates = await slack.api.wait_for("chat.update", 2)
    assert all(": done" in texts(u.params["blocks"]) for u in updates)
    assert await refunded(services, "ch_jane_1") == 8000
    # Managers come from a user group, asked once and then cached.
    await slack.command(MANAGER, "approvals")
    await slack.settle()
    assert len(slack.api.of("usergroups.users.list")) == 1


async def test_capture_button_asks_for_a_reason(slack, services):
    await slack.command(AGENT, f"lookup {JANE}")
    card = (await slack.api.wait_for("chat.postMessage"))[0]
    await slack.click(AGENT, card, button(card, "capture ledger:ch_jane_auth"))
    view = (await slack.api.wait_for("views.open"))[0].answer["view"]
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"] == ["amount", "reason"]
    await slack.submit(AGENT, view, amount="100", reason="customer confirmed the order")
    done = (await slack.api.wait_for("chat.postMessage", match=in_channel(INTERNAL, thread=card.answer["ts"])))[0]  # fmt: skip
    assert "Capture of €100.00 on ch_jane_auth: done" in texts(done.params["blocks"])
    async with services.db.read() as s:
        charge = await s.get(LedgerCharge, "ch_jane_auth")
    assert charge is not None and charge.amount_captured == 10000


# --- reliability ------------------------------------------------------------------------


async def test_bad_and_stale_signatures_get_401_and_nothing_happens(slack):
    body = urlencode({"command": "/billing", "text": f"lookup {JANE}", "user_id": AGENT,
                      "channel_id": INTERNAL, "team_id": TEAM_ID, "response_url": slack.api.response_url()})  # fmt: skip
    forged = {**slack.headers(body), "X-Slack-Signature": "v0=" + "0" * 64}
    stale = slack.headers(body, timestamp=int(time.time()) - 600)
    for headers in (forged, stale, {}):
        answer = await slack.http.post(
            "/slack/events", content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        )  # fmt: skip
        assert answer.status_code == 401
    await slack.settle()
    assert slack.api.calls == []


async def test_event_retries_are_processed_once(slack):
    first = {"type": "message", "channel": HELPDESK, "user": NOBODY, "text": f"Refund request from {JANE}",
             "ts": "1760000000.000100", "event_ts": "1760000000.000100", "channel_type": "channel"}  # fmt: skip
    await slack.event(first, event_id="Ev0RETRY001")
    await slack.api.wait_for("chat.postMessage")
    # The same event again (Slack did not see our ack in time). Another thread, so only the
    # event_id can tell it was seen.
    again = {**first, "ts": "1760000000.000200", "event_ts": "1760000000.000200"}
    assert (await slack.event(again, event_id="Ev0RETRY001", retry=1)).status_code == 200
    assert (await slack.event(again, event_id="Ev0RETRY001", retry=2)).status_code == 200
    await slack.settle()
    assert len(slack.api.of("chat.postMessage")) == 1
    # A retry whose first try never reached us is still processed.
    await slack.event(again, event_id="Ev0RETRY002", retry=1)
    await slack.api.wait_for("chat.postMessage", 2)


# --- helpdesk channels ------------------------------------------------------------------


async def test_helpdesk_message_gets_a_compact_card_once_per_thread(slack):
    ticket = {"type": "message", "channel": HELPDESK, "user": NOBODY, "ts": "1760000001.000100",
              "event_ts": "1760000001.000100", "channel_type": "channel",
              "text": f"Ticket #4411: <mailto:{JANE}|{JANE}> was charged twice"}  # fmt: skip
    await slack.event(ticket)
    card = (await slack.api.wait_for("chat.postMessage"))[0]
    assert card.params["thread_ts"] == ticket["ts"] and "Jane Doe" in texts(card.params["blocks"])
    rows = [b for b in card.params["blocks"] if b["type"] == "section" and b.get("text", {}).get("text", "").startswith("`ch_")]  # fmt: skip
    assert sum(r["text"]["text"].count("\n") + 1 for r in rows) <= 3  # compact: three rows a list
    assert any(b["value"].startswith("{") for b in buttons(card.params["blocks"]))  # "more"
    # A new delivery of the same message (edited, re-sent by the integration) and a reply in
    # its thread get nothing more.
    await slack.event({**ticket, "text": f"{ticket['text']} (edited)"})
    await slack.event({**ticket, "ts": "1760000001.000200", "thread_ts": ticket["ts"], "text": "also john.smith@example.com"})  # fmt: skip
    await slack.event({**ticket, "subtype": "message_changed", "ts": "1760000001.000300"})
    await slack.settle()
    assert len(slack.api.of("chat.postMessage")) == 1


async def test_helpdesk_answers_integration_bot_messages(slack):
    zendesk = {
        "type": "message", "subtype": "bot_message", "bot_id": "B0ZENDESK01", "username": "Zendesk",
        "channel": HELPDESK, "ts": "1760000002.000100", "event_ts": "1760000002.000100", "text": "",
        "attachments": [{"fallback": "Ticket #981", "title": "Ticket #981: charged twice",
                         "fields": [{"title": "Requester", "value": "john.smith@example.com", "short": True},
                                    {"title": "Order", "value": "order #12345", "short": True}]}],
    }  # fmt: skip
    await slack.event(zendesk)
    card = (await slack.api.wait_for("chat.postMessage"))[0]
    assert card.params["thread_ts"] == zendesk["ts"] and "John Smith" in texts(
        card.params["blocks"]
    )
    assert find_references(zendesk) == ["john.smith@example.com", "12345"]


async def test_helpdesk_never_posts_in_shared_channels(slack):
    for channel, flag in ((SHARED_HELPDESK, False), (HELPDESK, True)):
        await slack.event(
            {"type": "message", "channel": channel, "user": NOBODY, "text": f"about {JANE}",
             "ts": f"17600000{secrets.randbelow(99):02d}.000100", "event_ts": "1760000003.000100"},
            shared=flag,
        )  # fmt: skip
    await slack.settle()
    assert slack.api.of("chat.postMessage") == [] and slack.api.of("chat.postEphemeral") == []


def test_references_most_precise_first():
    message = {"text": "Re ch_3MmlLrLkdIwHu7ix0snN0B15 / 2GG279541U471931P for <mailto:A@Example.com|A@Example.com>, ticket #1234"}  # fmt: skip
    assert find_references(message) == ["ch_3MmlLrLkdIwHu7ix0snN0B15", "2GG279541U471931P", "a@example.com"]  # fmt: skip


# --- shared channels and people from outside --------------------------------------------


async def test_agent_commands_in_a_shared_channel_answer_ephemerally(slack):
    await slack.command(AGENT, f"lookup {JANE}", channel=SHARED)
    said = (await slack.api.wait_for("chat.postEphemeral"))[0]
    assert said.params["user"] == AGENT and "Jane Doe" in texts(said.params["blocks"])
    # A request made there waits in the approvals channel, never in the shared thread.
    await slack.command(
        AGENT, "refund ch_jane_1 80 reason: duplicate charged twice", channel=SHARED
    )
    await slack.api.wait_for("chat.postMessage", match=in_channel(APPROVALS))
    note = (await slack.api.wait_for("chat.postEphemeral", 2))[1]
    assert f"A manager decides in <#{APPROVALS}>" in texts(note.params["blocks"])
    assert buttons(note.params["blocks"]) == []
    await slack.settle()
    assert not [c for c in slack.api.of("chat.postMessage") if c.params["channel"] == SHARED]


async def test_external_users_are_customers_even_when_listed(slack):
    await slack.command(OUTSIDER, f"lookup {JANE}", team="T0OTHERORG")
    said = (await slack.api.wait_for("chat.postEphemeral"))[0]
    assert "lookup needs the agent role" in said.params["text"]
    await slack.command(NOBODY, f"lookup {JANE}")  # in no list: a customer
    said = (await slack.api.wait_for("chat.postEphemeral", 2))[1]
    assert "lookup needs the agent role" in said.params["text"]
    await slack.settle()
    assert slack.api.of("chat.postMessage") == []


async def test_an_unknown_conversation_is_refused_and_says_why(slack):
    await slack.command(AGENT, f"lookup {JANE}", channel=UNKNOWN)
    said = (await slack.api.wait_for("response_url"))[0]
    assert "could not check who can read this conversation" in said.params["text"]
    assert "channel_not_found" in said.params["text"]
    await slack.settle()
    assert slack.api.of("chat.postMessage") == [] and slack.api.of("chat.postEphemeral") == []


# --- Block Kit limits -------------------------------------------------------------------


async def add_customer(services: Services, customer_id: str, email: str, charges: int) -> None:
    """One ledger customer with many charges, inserted directly (as bench/_common does)."""
    epoch = now() - timedelta(days=charges)
    async with services.db.write() as session:
        session.add(LedgerCustomer(id=customer_id, email=email, name="Bulk " * 40, created=epoch))
        await session.flush()
        session.add_all(
            LedgerCharge(
                id=f"ch_{customer_id}_{i:05d}", customer_id=customer_id, amount=1999, currency="EUR",
                amount_captured=1999, amount_refunded=0, status="succeeded",
                description=f"order {i} " + "<long & winding> " * 25, created=epoch + timedelta(hours=i),
            )
            for i in range(charges)
        )  # fmt: skip


def assert_within_block_kit(blocks: list[dict[str, Any]]) -> None:
    assert 0 < len(blocks) <= 50
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert len(block.get("text", {}).get("text", "")) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
        if block["type"] == "actions":
            assert 0 < len(block["elements"]) <= 25
        if block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
    for element in buttons(blocks):
        assert 0 < len(element["text"]["text"]) <= 75
        assert len(element["value"]) <= 2000


async def test_block_kit_limits_hold_for_a_customer_with_5000_charges(slack, services):
    await add_customer(services, "cus_bulk", "bulk@example.com", 5000)
    await slack.command(AGENT, "lookup bulk@example.com")
    card = (await slack.api.wait_for("chat.postMessage", within=60))[0]
    blocks = card.params["blocks"]
    assert_within_block_kit(blocks)
    assert "… and 990 more" in texts(blocks)  # lookup.max_charges loads the newest 1,000
    more = next(b for b in buttons(blocks) if b["action_id"].startswith("chargedesk.more."))
    await slack.click(AGENT, card, more)
    page = (await slack.api.wait_for("chat.postMessage", 2, within=60))[1]
    assert_within_block_kit(page.params["blocks"])
    shown = texts(page.params["blocks"])
    assert "Charges 11–20" in shown and "`ch_cus_bulk_04989`" in shown and "… and 980 more" in shown
    assert "&lt;long &amp; winding&gt;" in shown  # data is escaped, never read as Slack markup


async def test_a_channel_shared_later_is_treated_as_shared_at_once(slack):
    await slack.command(AGENT, f"lookup {JANE}")
    await slack.api.wait_for("chat.postMessage")
    slack.api.channel(INTERNAL, "billing-team", private=True, ext_shared=True)
    await slack.event(
        {"type": "channel_shared", "connected_team_id": "T0PARTNER1", "channel": INTERNAL,
         "event_ts": "1760000004.000100"}
    )  # fmt: skip
    await slack.settle()
    await slack.command(AGENT, f"lookup {JANE}")
    said = (await slack.api.wait_for("chat.postEphemeral"))[0]
    assert "Jane Doe" in texts(said.params["blocks"])
    assert len(slack.api.of("chat.postMessage")) == 1


def test_the_manifest_subscribes_to_what_the_app_handles():
    manifest = yaml.safe_load((REPO / "config" / "slack-manifest.yml").read_text())
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/billing" and command["should_escape"] is False
    settings = manifest["settings"]
    urls = [command["url"], settings["event_subscriptions"]["request_url"],
            settings["interactivity"]["request_url"]]  # fmt: skip
    assert all(url.startswith("https://") and url.endswith("/slack/events") for url in urls)
    events = set(settings["event_subscriptions"]["bot_events"])
    assert {"message.channels", "message.groups", "channel_shared", "channel_unshared"} <= events
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    needed = {"commands", "chat:write", "channels:read", "groups:read", "channels:history",
              "groups:history", "users:read", "usergroups:read", "files:write", "im:write"}  # fmt: skip
    assert needed <= scopes


async def test_the_fake_slack_api_refuses_what_slack_refuses(api):
    client = AsyncWebClient(token=api.token, base_url=f"{api.base_url}/api/")
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        await client.chat_postMessage(channel=INTERNAL, text="x", blocks=[{"type": "divider"}] * 51)
    await client.api_call(
        "chat.postEphemeral", json={"channel": INTERNAL, "text": "x", "colour": 1}
    )
    with pytest.raises(SlackApiError, match="invalid_auth"):
        await AsyncWebClient(token="xoxb-wrong", base_url=client.base_url).auth_test()
    assert api.problems == [
        "chat.postMessage: 51 blocks in a message (at most 50)",
        "chat.postEphemeral: missing required parameter user",
        "chat.postEphemeral: unknown parameter colour",
    ]
    api.problems.clear()  # seen: the fixture's own check is for the bot's calls


async def test_a_request_decided_in_the_shell_is_redrawn_in_slack(slack, services):
    """Whichever platform decides, every Slack copy of the request shows the outcome."""
    from bot.actors import Role
    from tests.conftest import person, say

    approval_id, _ = await pending_refund(slack)
    reply = await say(
        services, person("maria", Role.manager, platform="shell"), f"approve {approval_id}"
    )
    assert reply.approval.state == "succeeded"
    updates = await slack.api.wait_for("chat.update", 1)
    assert ": done" in texts(updates[-1].params["blocks"])


async def test_gateway_alerts_reach_the_slack_alerts_channel_once(slack, services):
    """A dispute webhook queues an alert; Slack posts it to the alerts channel, once."""
    from bot import notify
    from bot.gateways.events import EventKind
    from bot.gateways.registry import Gateways
    from tests.test_webhooks import Signed, event

    services.settings.alerts_channel = f"slack:{APPROVALS}"
    services.gateways = Gateways([*services.gateways, Signed()], timeout=5)
    dispute = event(
        1, EventKind.dispute_created, "dp_9", at=0, related_id="ch_jane_1", customer_id="cus_jane"
    )
    for _ in range(2):  # a redelivery posts nothing more
        response = await slack.http.post(
            "/webhooks/acme", content=json.dumps([dispute]), headers={"x-token": "good"}
        )
        assert response.status_code == 200
    posts = slack.api.of("chat.postMessage")
    alerts = [
        c
        for c in posts
        if c.params["channel"] == APPROVALS and "New dispute" in texts(c.params["blocks"])
    ]
    assert len(alerts) == 1
    assert await notify.pending(services.db) == []
    assert await slack.bot.deliver_alerts() == 0


# --- documents: PDFs uploaded where they may be read ------------------------------------


async def test_a_receipt_in_an_internal_channel_is_uploaded_beside_the_card(slack):
    await slack.command(AGENT, "receipt ch_jane_1")
    done = (await slack.api.wait_for("files.completeUploadExternal"))[0]
    card = slack.api.of("chat.postMessage")[0]  # the card first, then its file
    assert card.params["channel"] == INTERNAL and "Receipt RCT-" in card.params["text"]
    [asked] = slack.api.of("files.getUploadURLExternal")
    assert asked.answer["upload_url"].startswith(f"{slack.api.base_url}/upload/")
    [shared] = slack.api.files
    assert shared.data.startswith(b"%PDF") and len(shared.data) == int(asked.params["length"])
    assert shared.filename == asked.params["filename"] and shared.filename.startswith("RCT-")
    assert (shared.channel, shared.thread_ts) == (INTERNAL, None)
    assert done.params["channel_id"] == INTERNAL
    assert [f["id"] for f in done.params["files"]] == [asked.answer["file_id"]]
    await slack.settle()
    assert slack.api.of("conversations.open") == []  # nothing private about it


@pytest.mark.parametrize("channel", [SHARED, HELPDESK])
async def test_a_document_asked_for_where_others_read_goes_to_the_agents_dm(slack, channel):
    await slack.command(AGENT, "invoice pdf in_jane_paid", channel=channel)
    said = (await slack.api.wait_for("chat.postEphemeral"))[0]
    [opened] = slack.api.of("conversations.open")
    assert opened.params["users"] == AGENT
    dm = opened.answer["channel"]["id"]
    [shared] = slack.api.files
    assert shared.channel == dm and shared.data.startswith(b"%PDF")
    assert f"<#{channel}>" in (shared.initial_comment or "")
    assert said.params["user"] == AGENT
    assert f"{shared.filename} is in your direct messages with me" in texts(said.params["blocks"])
    await slack.settle()
    assert not [c for c in slack.api.of("chat.postMessage") if c.params["channel"] == channel]
    assert all(
        c.params.get("channel_id") == dm for c in slack.api.of("files.completeUploadExternal")
    )


async def test_a_failed_upload_is_said_not_swallowed(slack):
    slack.api.fail("files.completeUploadExternal", "not_in_channel")
    await slack.command(AGENT, "receipt ch_jane_1")
    said = (await slack.api.wait_for("chat.postEphemeral"))[0]
    shown = texts(said.params["blocks"])
    assert "I could not share it here" in shown and "not_in_channel" in shown
    assert slack.api.files == []


async def test_the_email_button_on_a_receipt_queues_one_email(slack, services):
    from bot.store.tables import EmailRow

    await slack.command(AGENT, "receipt ch_jane_1")
    card = (await slack.api.wait_for("chat.postMessage"))[0]
    await slack.settle()
    await slack.click(AGENT, card, button(card, "receipt ledger:ch_jane_1 send"))
    emailed = (await slack.api.wait_for("chat.postMessage", 2))[1]
    assert "queued to jane.doe@example.com" in texts(emailed.params["blocks"])
    async with services.db.read() as s:
        assert [e.recipient for e in await s.scalars(select(EmailRow))] == [JANE]
    assert len(slack.api.files) == 1  # emailing uploads nothing more


async def test_customers_get_no_documents_in_slack(slack):
    await slack.command(NOBODY, "receipt ch_jane_1")
    said = (await slack.api.wait_for("chat.postEphemeral"))[0]
    assert "receipt needs the agent role" in said.params["text"]
    await slack.settle()
    assert slack.api.of("files.getUploadURLExternal") == [] and slack.api.files == []


# --- customers: verified self-service, private wherever asked ---------------------------


def said_to(user: str, words: str) -> Any:
    def match(call: Call) -> bool:
        return call.params.get("user") == user and words in (
            call.params.get("text", "") + texts(call.params.get("blocks", []))
        )

    return match


async def verify_as_jane(slack: Slack, user: str = CUSTOMER, channel: str = SHARED) -> None:
    """The whole `/billing verify` exchange, the code read from the email it queued."""
    team = CUSTOMER_TEAM if user == CUSTOMER else TEAM_ID
    await slack.command(user, f"verify {JANE}", channel=channel, team=team)
    await slack.api.wait_for("chat.postEphemeral", match=said_to(user, "a code is on its way"))
    code = await code_in_outbox(slack.services, JANE)
    await slack.command(user, f"verify {code}", channel=channel, team=team)
    await slack.api.wait_for(
        "chat.postEphemeral", match=said_to(user, f"You are verified as {JANE}")
    )


async def click_ephemeral(
    slack: Slack, user: str, channel: str, button: dict[str, Any], team: str = CUSTOMER_TEAM
) -> httpx.Response:
    """Click a button on an ephemeral message: Slack sends no `message` for those."""
    return await slack.interact({
        "type": "block_actions", "api_app_id": "A0CHARGE01", "token": "legacy",
        "team": {"id": TEAM_ID, "domain": "chargedesk-test"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "container": {"type": "message", "message_ts": "1760000000.000100", "channel_id": channel,
                      "is_ephemeral": True},
        "trigger_id": trigger(), "channel": {"id": channel, "name": "acme-support"},
        "response_url": slack.api.response_url(),
        "actions": [{**button, "block_id": "b1", "action_ts": f"{time.time():.6f}"}],
    })  # fmt: skip


def posted_in(slack: Slack, channel: str) -> list[Call]:
    return [c for c in slack.api.of("chat.postMessage") if c.params["channel"] == channel]


async def test_a_verified_customer_sees_own_billing_only_ephemerally_in_a_shared_channel(slack):
    await verify_as_jane(slack)
    await slack.command(CUSTOMER, "me", channel=SHARED, team=CUSTOMER_TEAM)
    mine = (
        await slack.api.wait_for("chat.postEphemeral", match=said_to(CUSTOMER, "Your billing"))
    )[0]
    shown = texts(mine.params["blocks"])
    assert (
        mine.params["channel"] == SHARED and "`ch_jane_1`" in shown and "john" not in shown.lower()
    )
    assert "cus_jane" not in shown  # the customer's card, not the agents'
    values = [b.get("value") for b in buttons(mine.params["blocks"])]
    assert "me pdf ledger:in_jane_paid" in values and "portal" in values and "ask" in values
    assert not any(v and v.startswith(("refund", "cancel", "capture")) for v in values)
    assert block_kit_problems(mine.params["blocks"]) == []
    await slack.settle()
    assert slack.api.of("chat.postMessage") == []  # nothing public, anywhere


async def test_an_unverified_customer_is_told_to_verify_and_sees_nothing(slack):
    await slack.command(CUSTOMER, "me", channel=SHARED, team=CUSTOMER_TEAM)
    said = (await slack.api.wait_for("chat.postEphemeral"))[0]
    assert said.params["user"] == CUSTOMER
    # The top-level text is mrkdwn: `<email>` unescaped would be read as a link.
    assert said.params["text"] == "verify your email first: `verify &lt;email&gt;`"
    await slack.settle()
    assert slack.api.of("chat.postMessage") == [] and len(slack.api.of("chat.postEphemeral")) == 1


async def test_a_customers_document_goes_to_their_dm_even_from_an_internal_channel(slack):
    await verify_as_jane(slack, NOBODY, INTERNAL)  # a workspace member without a role: a customer
    await slack.command(NOBODY, "me pdf in_jane_paid", channel=INTERNAL)
    said = (await slack.api.wait_for("chat.postEphemeral", match=said_to(NOBODY, "Invoice INV-")))[
        0
    ]
    [opened] = slack.api.of("conversations.open")
    assert opened.params["users"] == NOBODY
    [shared] = slack.api.files
    assert shared.channel == opened.answer["channel"]["id"] and shared.data.startswith(b"%PDF")
    assert "is in your direct messages with me" in texts(said.params["blocks"])
    await slack.settle()
    assert slack.api.of("chat.postMessage") == []


async def test_the_ask_button_opens_a_modal_and_the_question_reaches_the_helpdesk(slack, services):
    services.settings.questions_channel = f"slack:{HELPDESK}"
    await verify_as_jane(slack)
    await slack.command(CUSTOMER, "me", channel=SHARED, team=CUSTOMER_TEAM)
    mine = (
        await slack.api.wait_for("chat.postEphemeral", match=said_to(CUSTOMER, "Your billing"))
    )[0]
    await click_ephemeral(slack, CUSTOMER, SHARED, button(mine, "ask"))
    view = (await slack.api.wait_for("views.open"))[0].answer["view"]
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"] == ["question"]

    answer = await slack.submit(CUSTOMER, view, question="Why was I charged twice in March?")
    assert answer.status_code == 200
    await slack.api.wait_for("chat.postEphemeral", match=said_to(CUSTOMER, "Question sent"))
    question = (await slack.api.wait_for("chat.postMessage", match=in_channel(HELPDESK)))[0]
    shown = texts(question.params["blocks"])
    assert (
        "Billing question from Jane Doe" in shown and "Why was I charged twice in March?" in shown
    )
    assert "`ch_jane_1`" in shown and "Discuss it in this message's thread." in shown
    assert "thread_ts" not in question.params  # the card is the root agents answer under
    await slack.settle()
    assert posted_in(slack, SHARED) == []
    assert await slack.bot.deliver_alerts() == 0  # posted once
    entries = await query(services.db, AuditFilter(actor=f"slack:{CUSTOMER}", limit=50))
    assert "customer_question" in [e.action for e in entries]


async def test_a_question_is_never_posted_into_a_shared_channel(slack, services):
    services.settings.questions_channel = f"slack:{SHARED}"
    await verify_as_jane(slack)
    await slack.command(CUSTOMER, "ask where is my refund?", channel=SHARED, team=CUSTOMER_TEAM)
    await slack.api.wait_for("chat.postEphemeral", match=said_to(CUSTOMER, "Question sent"))
    await slack.settle()
    assert slack.api.of("chat.postMessage") == []
    assert await slack.bot.deliver_alerts() == 0


async def test_the_billing_page_link_is_a_link_button_that_runs_nothing(slack):
    await verify_as_jane(slack)
    await slack.command(CUSTOMER, "portal", channel=SHARED, team=CUSTOMER_TEAM)
    said = (
        await slack.api.wait_for("chat.postEphemeral", match=said_to(CUSTOMER, "Your billing page"))
    )[0]
    [link] = buttons(said.params["blocks"])
    assert link["url"].startswith("http://localhost:8000/portal/l/") and "value" not in link
    before = len(slack.api.calls)
    await click_ephemeral(slack, CUSTOMER, SHARED, link)
    await slack.settle()
    assert slack.api.calls[before:] == []  # Slack opened the page; the bot says nothing


async def test_the_bots_own_question_card_in_a_helpdesk_channel_gets_no_lookup(slack):
    """Bolt drops the app's own messages, so a question card is not answered with a lookup."""
    from chargedesk_emulators.slack import BOT_ID, BOT_USER

    await slack.event({
        "type": "message", "channel": HELPDESK, "user": BOT_USER, "bot_id": BOT_ID,
        "text": f"Billing question from Jane Doe ({JANE})", "ts": "1760000009.000100",
        "event_ts": "1760000009.000100", "channel_type": "channel",
    })  # fmt: skip
    await slack.settle()
    assert slack.api.of("chat.postMessage") == []


async def test_a_report_posts_its_chart_beside_the_card(slack):
    await slack.command(AGENT, "refund ch_jane_1 10.00 reason: goodwill late parcel")
    await slack.settle()
    await slack.command(MANAGER, "report refunds")
    await slack.api.wait_for("files.completeUploadExternal")
    card = next(
        c for c in slack.api.of("chat.postMessage") if "Refunds by person" in c.params["text"]
    )
    assert card.params["channel"] == INTERNAL
    [shared] = slack.api.files
    assert shared.filename.startswith("refunds-") and shared.filename.endswith(".png")
    assert shared.data.startswith(b"\x89PNG") and shared.channel == INTERNAL
