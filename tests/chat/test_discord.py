"""The Discord bot as Discord drives it: raw INTERACTION_CREATE payloads into discord.py, a fake REST API.

discord.py's REST base points at the fake Discord API; the bot logs in (which
syncs `/billing`), then each scenario feeds the payloads Discord would send over
the gateway and reads what the bot did from the requests the fake recorded:
interaction callbacks, follow-ups, edits of the original response, channel
messages and threads. Tests wait with the fake's bounded poll, never a sleep.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import discord
import pytest
from sqlalchemy import select

from bot.actors import Actor, Channel, Role
from bot.audit.log import AuditFilter, query
from bot.chat.discord.adapter import DiscordBot
from bot.chat.discord.slash import layout
from bot.commands import Context
from bot.commands.forms import refund_form
from bot.services import Services
from bot.settings import DiscordSettings
from bot.store.tables import ChatMessage, LedgerCharge, LedgerCustomer
from chargedesk_emulators.discord import (
    APPLICATION_ID,
    CALLBACK,
    EMBED_TOTAL,
    GUILD_ID,
    Call,
    DiscordAPI,
    discord_api,
)
from tests.chat.mailbox import code_in_outbox
from tests.conftest import refunded

pytestmark = pytest.mark.storage

AGENT, OTHER_AGENT, MANAGER, OTHER_MANAGER, CUSTOMER = (
    "1300000000000000001", "1300000000000000002", "1300000000000000003",
    "1300000000000000004", "1300000000000000005",
)  # fmt: skip
AGENT_ROLE, MANAGER_ROLE = "1400000000000000001", "1400000000000000002"
INTERNAL, SUPPORT, HELPDESK = "1500000000000000001", "1500000000000000002", "1500000000000000003"
JANE = "jane.doe@example.com"
NAMES = {
    AGENT: "Alex",
    OTHER_AGENT: "Sam",
    MANAGER: "Maria",
    OTHER_MANAGER: "Mark",
    CUSTOMER: "Jane",
}
ROLES = {
    AGENT: [AGENT_ROLE],
    OTHER_AGENT: [AGENT_ROLE],
    MANAGER: [AGENT_ROLE, MANAGER_ROLE],
    OTHER_MANAGER: [MANAGER_ROLE],
    CUSTOMER: [],
}
WEBHOOK = "/webhooks/{webhook_id}/{webhook_token}"
ORIGINAL = "/webhooks/{webhook_id}/{webhook_token}/messages/@original"
SNOWFLAKES = itertools.count(1_600_000_000_000_000_000)


def populate(fake: DiscordAPI) -> None:
    """The test guild's roles."""
    fake.role(GUILD_ID, AGENT_ROLE, "Billing Agents")
    fake.role(GUILD_ID, MANAGER_ROLE, "Billing Managers")


@pytest.fixture
def api() -> Iterator[DiscordAPI]:
    with discord_api() as fake:
        populate(fake)
        yield fake
        assert fake.problems == [], "the fake Discord API saw requests Discord would refuse"


@dataclass
class Harness:
    bot: DiscordBot
    api: DiscordAPI
    services: Services

    def feed(self, payload: dict[str, Any]) -> str:
        """Deliver one INTERACTION_CREATE as the gateway would; its interaction ID."""
        self.bot._connection.parse_interaction_create(payload)  # type: ignore[arg-type]
        return str(payload["id"])

    async def callback(self, interaction_id: str) -> Any:
        calls = await self.api.wait_for(
            "POST", CALLBACK, match=lambda c: c.path.split("/")[2] == interaction_id
        )
        return calls[0].body

    async def original(self, token: str, count: int = 1) -> Call:
        calls = await self.api.wait_for(
            "PATCH", ORIGINAL, count, match=lambda c: c.path.split("/")[3] == token
        )
        return calls[count - 1]

    async def command(
        self, user: str, sub: str, channel: str = INTERNAL, **options: Any
    ) -> dict[str, Any]:
        typed = {str: 3, int: 4}
        called: dict[str, Any] = {"type": 1, "name": sub, "options": [
            {"type": typed[type(v)], "name": k, "value": v} for k, v in options.items()
        ]}  # fmt: skip
        group = next(
            (g for g, specs in layout()[1].items() if sub in [s.name for s in specs]), None
        )
        if group is not None:  # `/billing subscription plan`: a subcommand group around it
            called = {"type": 2, "name": group, "options": [called]}
        data = {
            "id": "1700000000000000001", "name": "billing", "type": 1, "guild_id": GUILD_ID,
            "options": [called],
        }  # fmt: skip
        payload = interaction(2, user, channel, data)
        self.feed(payload)
        return payload

    async def click(
        self, user: str, message: dict[str, Any], custom_id: str, channel: str
    ) -> dict[str, Any]:
        data = {"custom_id": custom_id, "component_type": 2}
        payload = interaction(3, user, channel, data, message={**message, "channel_id": channel})
        self.feed(payload)
        return payload

    async def submit(
        self, user: str, modal: dict[str, Any], channel: str, message: dict[str, Any] | None = None,
        **values: str,
    ) -> dict[str, Any]:  # fmt: skip
        """Submit a modal the bot opened, with `values` typed over its prefilled ones."""
        rows = [
            {"type": 1, "components": [{"type": 4, "custom_id": c["custom_id"],
                                        "value": values.get(c["custom_id"], c.get("value") or "")}]}
            for row in modal["components"] for c in row["components"]
        ]  # fmt: skip
        data = {"custom_id": modal["custom_id"], "components": rows}
        extra = {"message": {**message, "channel_id": channel}} if message else {}
        payload = interaction(5, user, channel, data, **extra)
        self.feed(payload)
        return payload


def user_object(user: str) -> dict[str, Any]:
    return {"id": user, "username": NAMES[user].lower(), "discriminator": "0", "avatar": None,
            "global_name": NAMES[user], "public_flags": 0}  # fmt: skip


def interaction(
    kind: int, user: str, channel: str, data: dict[str, Any], message: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An INTERACTION_CREATE payload as Discord documents it (guild member, channel, token)."""
    payload = {
        "id": str(next(SNOWFLAKES)), "application_id": APPLICATION_ID, "type": kind, "data": data,
        "guild_id": GUILD_ID, "channel_id": channel,
        "channel": {"id": channel, "type": 0, "guild_id": GUILD_ID, "name": "billing", "position": 0,
                    "permission_overwrites": [], "nsfw": False, "parent_id": None, "flags": 0},
        "member": {"user": user_object(user), "roles": ROLES[user], "joined_at": "2025-01-01T00:00:00+00:00",
                   "deaf": False, "mute": False, "flags": 0, "pending": False, "nick": None, "avatar": None,
                   "permissions": "2248473465835073"},
        "token": f"tok{secrets.token_hex(16)}", "version": 1, "app_permissions": "2248473465835073",
        "locale": "en-US", "guild_locale": "en-US", "entitlements": [],
        "authorizing_integration_owners": {"0": GUILD_ID}, "context": 0,
        "attachment_size_limit": 10_485_760,
    }  # fmt: skip
    if message is not None:
        payload["message"] = message
    return payload


@asynccontextmanager
async def running_bot(services: Services, api: DiscordAPI, **extra: Any) -> AsyncIterator[Harness]:
    """The bot logged in to the fake API, with the test guild's roles and channels (+ `extra`)."""
    base = discord.http.Route.BASE
    settings = DiscordSettings(
        token="fake-token", guild_ids=[int(GUILD_ID)], agent_roles=[AGENT_ROLE],
        manager_roles=["Billing Managers"], support_channels=[int(SUPPORT)], api_base=api.base_url,
        **extra,
    )  # fmt: skip
    bot = DiscordBot(settings, services)
    try:
        await bot.login("fake-token")
        yield Harness(bot, api, services)
    finally:
        await bot.close()
        discord.http.Route.BASE = base


@pytest.fixture
async def discord_bot(services: Services, api: DiscordAPI) -> AsyncIterator[Harness]:
    async with running_bot(services, api) as harness:
        yield harness


def custom_ids(body: dict[str, Any]) -> list[str]:
    """The custom_ids of a message's buttons (link buttons have none)."""
    return [
        c["custom_id"]
        for row in body.get("components") or []
        for c in row["components"]
        if "custom_id" in c
    ]


def shown(body: dict[str, Any]) -> str:
    """Everything a person reads in a message body."""
    out = [body.get("content") or ""]
    for e in body.get("embeds") or []:
        out += [e.get("title", ""), e.get("description", "")]
        out += [f"{f['name']}: {f['value']}" for f in e.get("fields", [])]
    return "\n".join(out)


async def lookup_card(
    d: Harness, user: str = AGENT, channel: str = INTERNAL, q: str = JANE
) -> Call:
    payload = await d.command(user, "lookup", channel, query=q)
    assert (await d.callback(payload["id"]))["type"] == 5  # deferred before the gateway is asked
    return await d.original(payload["token"])


async def pending_refund(d: Harness, user: str = AGENT) -> tuple[str, dict[str, Any], str]:
    """A refund of 80.00 waiting for approval: (approval ID, the thread card's message, thread ID)."""
    payload = await d.command(
        user, "refund", charge="ch_jane_1", amount="80", reason="duplicate charged twice"
    )
    await d.api.wait_for("POST", "/channels/{channel_id}/messages/{message_id}/threads")
    posted = (await d.api.wait_for("POST", "/channels/{channel_id}/messages"))[0]
    approve = next(c for c in custom_ids(posted.body) if c.startswith("cd:approve:"))
    assert (await d.callback(payload["id"]))["type"] == 5
    return approve.split(":")[2], posted.answer, posted.answer["channel_id"]


async def stored_places(services: Services, approval_id: str, count: int = 1) -> list[ChatMessage]:
    """Where a request's cards are stored: the adapter posts first and stores right after."""
    rows: list[ChatMessage] = []
    for _ in range(200):  # bounded: 5 s
        async with services.db.read() as s:
            rows = list(
                await s.scalars(select(ChatMessage).where(ChatMessage.approval_id == approval_id))
            )
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.025)
    return rows


async def test_login_syncs_billing_subcommands_with_typed_options(discord_bot):
    synced = await discord_bot.api.wait_for(
        "PUT", "/applications/{application_id}/guilds/{guild_id}/commands"
    )
    assert synced[0].path == f"/applications/{APPLICATION_ID}/guilds/{GUILD_ID}/commands"
    (billing,) = synced[0].body
    subs = {o["name"]: o for o in billing["options"]}
    assert billing["name"] == "billing" and all(o["type"] in (1, 2) for o in subs.values())
    direct, groups = layout()
    assert set(subs) == {spec.name for spec in direct} | set(groups)
    assert {"help", "lookup", "refund", "cancel", "capture", "void", "invoice", "receipt",
            "approvals", "approve", "deny", "audit", "alerts", "verify", "me", "portal", "ask",
            "links", "unlink"} <= set(subs)  # fmt: skip
    for group, specs in groups.items():  # `/billing subscription plan`
        assert subs[group]["type"] == 2
        assert [o["name"] for o in subs[group]["options"]] == [spec.name for spec in specs]
    refund = {o["name"]: o for o in subs["refund"]["options"]}
    assert [o["name"] for o in subs["refund"]["options"]] == [
        "charge",
        "reason",
        "amount",
        "method",
    ]
    assert [c["value"] for c in refund["method"]["choices"]] == ["gateway", "manual"]
    assert (
        refund["charge"]["type"] == 3
        and refund["charge"]["required"]
        and refund["charge"]["autocomplete"]
    )
    assert refund["amount"]["type"] == 3 and not refund["amount"].get("required", False)
    when = next(o for o in subs["cancel"]["options"] if o["name"] == "when")
    assert [c["value"] for c in when["choices"]] == ["period-end", "now"]
    assert subs["alerts"]["options"][0]["type"] == 4


async def test_lookup_answers_with_an_embed_and_action_buttons(discord_bot):
    card = await lookup_card(discord_bot)
    text = shown(card.body)
    assert "Billing profile for jane.doe@example.com" in text and "`ch_jane_1`" in text
    assert "€19.00" in text and "`sub_jane_pro`" in text
    ids = custom_ids(card.body)
    assert "cd:refund:ledger:ch_jane_1" in ids and "cd:capture:ledger:ch_jane_auth" in ids
    assert "cd:cancel:ledger:sub_jane_pro period-end" in ids


async def test_options_are_validated_again_by_the_argument_models(discord_bot, services):
    payload = await discord_bot.command(AGENT, "refund", charge="ch jane 1 !", reason="duplicate x")
    await discord_bot.api.wait_for("DELETE", ORIGINAL)  # the public placeholder goes
    answer = (await discord_bot.api.wait_for("POST", WEBHOOK))[0]
    assert answer.body["flags"] & 64 and "malformed" in shown(answer.body)
    assert payload["token"] in answer.path
    assert await refunded(services, "ch_jane_1") == 0


async def test_refund_button_modal_thread_and_manager_approval(discord_bot, services):
    d = discord_bot
    card = await lookup_card(d)
    click = await d.click(AGENT, card.answer, "cd:refund:ledger:ch_jane_1", INTERNAL)
    modal = await d.callback(click["id"])
    assert modal["type"] == 9
    agent = Actor(platform="discord", id=AGENT, name="Alex", roles=frozenset({Role.agent}))
    form = await refund_form(
        Context(services, agent, Channel(platform="discord", id=INTERNAL)), "ledger:ch_jane_1"
    )
    inputs = {c["custom_id"]: c for row in modal["data"]["components"] for c in row["components"]}
    assert modal["data"]["title"] == form.title
    assert list(inputs) == [f.name for f in form.fields]
    assert inputs["amount"]["value"] == form.fields[0].default == "120.00 EUR"

    submitted = await d.submit(AGENT, modal["data"], INTERNAL, card.answer,
                               amount="80", reason_code="duplicate", reason_text="charged twice")  # fmt: skip
    assert (await d.callback(submitted["id"]))["type"] == 5
    head = await d.original(submitted["token"])
    assert head.body["content"].startswith(f"<@{AGENT}> asked: Refund of €80.00 on ch_jane_1")
    thread_call = (
        await d.api.wait_for("POST", "/channels/{channel_id}/messages/{message_id}/threads")
    )[0]
    assert thread_call.path == f"/channels/{INTERNAL}/messages/{head.answer['id']}/threads"
    thread = thread_call.answer["id"]
    posted = (await d.api.wait_for("POST", "/channels/{channel_id}/messages"))[0]
    assert posted.path == f"/channels/{thread}/messages"
    assert "waiting for approval" in shown(posted.body) and f"<@{AGENT}>" in posted.body["content"]
    approve = next(c for c in custom_ids(posted.body) if c.startswith("cd:approve:apr_"))
    approval_id = approve.split(":")[2]
    assert f"cd:deny:{approval_id}" in custom_ids(posted.body)
    rows = await stored_places(services, approval_id)
    assert [(r.platform, r.channel_id, r.message_id) for r in rows] == [
        ("discord", thread, posted.answer["id"])
    ]
    assert await refunded(services, "ch_jane_1") == 0

    clicked = await d.click(MANAGER, posted.answer, approve, thread)
    assert (await d.callback(clicked["id"]))["type"] == 6  # deferred: the card is edited in place
    edit = (await d.api.wait_for("PATCH", "/channels/{channel_id}/messages/{message_id}"))[0]
    assert edit.path == f"/channels/{thread}/messages/{posted.answer['id']}"
    assert ": done" in shown(edit.body) and f"Maria (discord:{MANAGER})" in shown(edit.body)
    assert edit.body["components"] == []
    told = (await d.api.wait_for("POST", "/channels/{channel_id}/messages", 2))[1]
    assert told.path == f"/channels/{thread}/messages"
    assert (
        told.body["content"].startswith(f"<@{AGENT}> ")
        and "decided by Maria" in told.body["content"]
    )
    assert await refunded(services, "ch_jane_1") == 8000
    entries = await query(services.db, AuditFilter(approval_id=approval_id))
    assert [(e.outcome, e.actor_id) for e in entries if e.outcome in ("approved", "succeeded")] == [
        ("succeeded", MANAGER),
        ("approved", MANAGER),
    ]


async def test_requester_and_non_manager_are_refused_privately(discord_bot, services):
    d = discord_bot
    services.policy.refund.limits.pop("manager", None)  # a manager who needs another manager
    approval_id, message, thread = await pending_refund(d, OTHER_MANAGER)
    for user, why in (
        (OTHER_MANAGER, "your own request"),
        (AGENT, "approve needs the manager role"),
    ):
        clicked = await d.click(user, message, f"cd:approve:{approval_id}", thread)
        assert (await d.callback(clicked["id"]))["type"] == 6
        answer = (
            await d.api.wait_for("POST", WEBHOOK, match=lambda c, t=clicked["token"]: t in c.path)
        )[0]
        assert answer.body["flags"] & 64 and why in shown(answer.body)
    denied = await d.click(OTHER_MANAGER, message, f"cd:deny:{approval_id}", thread)
    refusal = await d.callback(denied["id"])  # refused before any modal opens
    assert refusal["type"] == 4 and refusal["data"]["flags"] & 64
    assert "your own request" in shown(refusal["data"])
    assert await refunded(services, "ch_jane_1") == 0
    assert d.api.of("PATCH", "/channels/{channel_id}/messages/{message_id}") == []


async def test_double_clicks_and_two_managers_at_once_execute_once(discord_bot, services):
    d = discord_bot
    approval_id, message, thread = await pending_refund(d)
    custom = f"cd:approve:{approval_id}"
    for user in (MANAGER, MANAGER, OTHER_MANAGER):
        await d.click(user, message, custom, thread)
    refusals = await d.api.wait_for("POST", WEBHOOK, 2)
    await d.api.wait_for(
        "POST", "/channels/{channel_id}/messages", 2
    )  # the card, then the requester told
    assert all(r.body["flags"] & 64 and "already" in shown(r.body) for r in refusals)
    assert await refunded(services, "ch_jane_1") == 8000
    entries = await query(services.db, AuditFilter(approval_id=approval_id))
    assert [e.outcome for e in entries].count("succeeded") == 1


async def test_deny_through_the_modal_never_executes(discord_bot, services):
    d = discord_bot
    approval_id, message, thread = await pending_refund(d)
    clicked = await d.click(MANAGER, message, f"cd:deny:{approval_id}", thread)
    modal = await d.callback(clicked["id"])
    assert modal["type"] == 9 and modal["data"]["custom_id"] == f"cd:form:deny:id={approval_id}"
    sent = await d.submit(MANAGER, modal["data"], thread, message, reason="not a duplicate")
    assert (await d.callback(sent["id"]))["type"] == 6
    edit = (await d.api.wait_for("PATCH", "/channels/{channel_id}/messages/{message_id}"))[0]
    assert ": denied" in shown(edit.body) and "not a duplicate" in shown(edit.body)
    assert await refunded(services, "ch_jane_1") == 0


async def test_support_channel_answers_are_ephemeral_and_customers_see_nothing(
    discord_bot, services
):
    d = discord_bot
    payload = await d.command(AGENT, "lookup", SUPPORT, query=JANE)
    deferred = await d.callback(payload["id"])
    assert deferred == {"type": 5, "data": {"flags": 64}}
    assert "ch_jane_1" in shown((await d.original(payload["token"])).body)

    asked = await d.command(CUSTOMER, "lookup", SUPPORT, query=JANE)
    assert (await d.callback(asked["id"]))["data"]["flags"] & 64
    answer = await d.original(asked["token"])
    assert "needs the agent role" in shown(answer.body) and "ch_jane" not in shown(answer.body)

    refund = await d.command(
        AGENT, "refund", SUPPORT, charge="ch_jane_1", amount="80", reason="duplicate x y"
    )
    assert (await d.callback(refund["id"]))["data"]["flags"] & 64
    note = await d.original(refund["token"])
    assert "A manager decides in" in note.body["content"] and custom_ids(note.body) == []
    assert d.api.of("POST", "/channels/{channel_id}/messages/{message_id}/threads") == []
    assert d.api.of("POST", "/channels/{channel_id}/messages") == []
    assert await refunded(services, "ch_jane_1") == 0


async def test_autocomplete_offers_the_last_looked_up_customers_charges(discord_bot):
    d = discord_bot
    await lookup_card(d)
    data = {"id": "1700000000000000001", "name": "billing", "type": 1, "guild_id": GUILD_ID,
            "options": [{"type": 1, "name": "refund", "options": [
                {"type": 3, "name": "charge", "value": "jane_1", "focused": True}]}]}  # fmt: skip
    asked = d.feed(interaction(4, AGENT, INTERNAL, data))
    answer = await d.callback(asked)
    assert answer["type"] == 8
    assert [c["value"] for c in answer["data"]["choices"]] == ["ledger:ch_jane_1"]
    nobody = d.feed(interaction(4, CUSTOMER, INTERNAL, data))
    assert (await d.callback(nobody))["data"]["choices"] == []


async def test_a_customer_with_5000_charges_stays_within_discords_limits(discord_bot, services):
    d = discord_bot
    async with services.db.write() as session:
        session.add(LedgerCustomer(id="cus_big", email="big@example.com", name="B" * 200,  # the longest name the column holds
                                   created=discord.utils.utcnow()))  # fmt: skip
        await session.flush()
        session.add_all(
            LedgerCharge(
                id=f"ch_big_{i:05d}",
                customer_id="cus_big",
                amount=1999,
                currency="EUR",
                amount_captured=1999,
                amount_refunded=0,
                status="succeeded",
                description="x" * 500,
                created=discord.utils.utcnow(),
            )
            for i in range(5000)
        )
    card = await lookup_card(d, q="big@example.com")
    body = card.body
    assert len(body["embeds"]) <= 10
    total = 0
    for embed in body["embeds"]:
        assert len(embed["title"]) <= 256 and len(embed.get("description", "")) <= 4096
        assert len(embed.get("fields", [])) <= 25
        assert all(
            len(f["name"]) <= 256 and len(f["value"]) <= 1024 for f in embed.get("fields", [])
        )
        total += len(embed["title"]) + len(embed.get("description", ""))
        total += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    assert total <= EMBED_TOTAL
    rows = body["components"]
    assert len(rows) <= 5 and all(len(r["components"]) <= 5 for r in rows)
    assert all(
        len(c["label"]) <= 80 and len(c["custom_id"]) <= 100 for r in rows for c in r["components"]
    )
    assert "Rows 1–10 of" in shown(body)
    more = next(c for c in custom_ids(body) if c.startswith("cd:page:"))
    clicked = await d.click(AGENT, card.answer, more, INTERNAL)
    assert (await d.callback(clicked["id"]))["type"] == 6
    page = await d.original(clicked["token"])
    assert "`ch_big_" in shown(page.body) and "Rows 11–20 of" in shown(page.body)
    assert any(c.startswith("cd:page:") and c != more for c in custom_ids(page.body))


async def test_a_failing_thread_falls_back_to_the_request_message(discord_bot, services):
    d = discord_bot
    d.api.fail("/channels/{channel_id}/messages/{message_id}/threads")
    payload = await d.command(
        AGENT, "refund", charge="ch_jane_1", amount="80", reason="duplicate charged twice"
    )
    card = await d.original(payload["token"], 2)
    approve = next(c for c in custom_ids(card.body) if c.startswith("cd:approve:"))
    (row,) = await stored_places(services, approve.split(":")[2])
    assert row is not None and row.channel_id == INTERNAL and row.thread_id is None


# --- documents: the PDF comes as an attachment of the answer ----------------------------


async def test_a_receipt_answer_carries_the_pdf_as_an_attachment(discord_bot):
    d = discord_bot
    payload = await d.command(AGENT, "receipt", charge="ch_jane_1")
    assert (await d.callback(payload["id"]))["type"] == 5  # deferred, public in an internal channel
    answer = await d.original(payload["token"])
    [sent] = answer.files
    assert sent.index == 0 and sent.filename.startswith("RCT-") and sent.data.startswith(b"%PDF")
    assert answer.body["attachments"] == [{"id": 0, "filename": sent.filename}]
    assert "Receipt RCT-" in shown(answer.body)
    assert [a["filename"] for a in answer.answer["attachments"]] == [sent.filename]
    assert "cd:receipt:ledger:ch_jane_1 send" in custom_ids(answer.body)


async def test_in_a_support_channel_the_pdf_is_only_for_the_agent(discord_bot):
    d = discord_bot
    payload = await d.command(AGENT, "invoice", SUPPORT, invoice="in_jane_paid", action="pdf")
    assert (await d.callback(payload["id"]))["data"]["flags"] & 64  # ephemeral from the start
    answer = await d.original(payload["token"])
    assert answer.files and answer.files[0].data.startswith(b"%PDF")
    assert d.api.of("POST", "/channels/{channel_id}/messages") == []


async def test_an_error_after_a_public_deferral_sends_no_file(discord_bot):
    d = discord_bot
    await d.command(AGENT, "receipt", charge="ch_jane_auth")
    await d.api.wait_for("DELETE", ORIGINAL)  # the public placeholder goes
    followup = (await d.api.wait_for("POST", WEBHOOK))[0]
    assert "took no money" in shown(followup.body) and followup.files == ()
    assert followup.body["flags"] & 64


async def test_the_email_button_follows_up_with_where_it_went(discord_bot, services):
    d = discord_bot
    payload = await d.command(AGENT, "receipt", charge="ch_jane_1")
    card = await d.original(payload["token"])
    await d.click(AGENT, card.answer, "cd:receipt:ledger:ch_jane_1 send", INTERNAL)
    followup = (await d.api.wait_for("POST", WEBHOOK))[0]
    assert "queued to jane.doe@example.com" in shown(followup.body) and followup.files == ()


# --- customers: verified self-service, private wherever asked ---------------------------

MESSAGES = "/channels/{channel_id}/messages"
THREADS = "/channels/{channel_id}/messages/{message_id}/threads"


async def verify_as_jane(d: Harness, user: str = CUSTOMER, channel: str = INTERNAL) -> None:
    """`/billing verify email:`, then `/billing verify code:` with the code from the email."""
    asked = await d.command(user, "verify", channel, email=JANE)
    assert await d.callback(asked["id"]) == {"type": 5, "data": {"flags": 64}}
    assert "a code is on its way" in shown((await d.original(asked["token"])).body)
    code = await code_in_outbox(d.services, JANE)
    done = await d.command(user, "verify", channel, code=code)
    assert f"You are verified as {JANE}" in shown((await d.original(done["token"])).body)


async def my_billing(d: Harness, channel: str = INTERNAL) -> Call:
    asked = await d.command(CUSTOMER, "me", channel)
    # Private from the first answer: not even a public "thinking…" shows, in any channel.
    assert await d.callback(asked["id"]) == {"type": 5, "data": {"flags": 64}}
    return await d.original(asked["token"])


async def test_me_is_private_from_the_first_answer_even_in_an_internal_channel(discord_bot):
    d = discord_bot
    await verify_as_jane(d)
    mine = await my_billing(d)
    text = shown(mine.body)
    assert "`ch_jane_1`" in text and "john" not in text.lower() and "cus_jane" not in text
    ids = custom_ids(mine.body)
    assert "cd:me:pdf ledger:in_jane_paid" in ids and "cd:portal" in ids and "cd:ask" in ids
    assert not any(i.startswith(("cd:refund", "cd:cancel", "cd:capture")) for i in ids)
    assert d.api.of("POST", MESSAGES) == [] and d.api.of("DELETE", ORIGINAL) == []


async def test_unverified_customers_in_a_support_channel_see_nothing(discord_bot):
    d = discord_bot
    asked = await d.command(CUSTOMER, "me", SUPPORT)
    assert await d.callback(asked["id"]) == {"type": 5, "data": {"flags": 64}}
    answer = await d.original(asked["token"])
    [embed] = answer.body["embeds"]
    assert embed["description"].startswith("❌ verify your email first") and "fields" not in embed
    assert custom_ids(answer.body) == []


async def test_the_invoice_button_sends_the_pdf_to_the_customer_only(discord_bot):
    d = discord_bot
    await verify_as_jane(d)
    mine = await my_billing(d)
    clicked = await d.click(CUSTOMER, mine.answer, "cd:me:pdf ledger:in_jane_paid", INTERNAL)
    assert (await d.callback(clicked["id"]))["type"] == 6
    sent = (await d.api.wait_for("POST", WEBHOOK, match=lambda c: clicked["token"] in c.path))[0]
    assert sent.body["flags"] & 64 and "Invoice INV-" in shown(sent.body)
    [pdf] = sent.files
    assert pdf.data.startswith(b"%PDF") and pdf.filename.startswith("INV-")
    assert d.api.of("POST", MESSAGES) == []


async def test_the_ask_button_opens_a_modal_and_the_question_reaches_the_helpdesk(
    discord_bot, services
):
    d = discord_bot
    services.settings.questions_channel = f"discord:{HELPDESK}"
    await verify_as_jane(d)
    mine = await my_billing(d)
    clicked = await d.click(CUSTOMER, mine.answer, "cd:ask", INTERNAL)
    modal = await d.callback(clicked["id"])
    assert modal["type"] == 9 and modal["data"]["custom_id"] == "cd:form:ask:"
    inputs = [c["custom_id"] for row in modal["data"]["components"] for c in row["components"]]
    assert inputs == ["question"]

    sent = await d.submit(CUSTOMER, modal["data"], INTERNAL, question="Why two charges in March?")
    assert await d.callback(sent["id"]) == {"type": 5, "data": {"flags": 64}}
    assert "Question sent" in shown((await d.original(sent["token"])).body)
    posted = (await d.api.wait_for("POST", MESSAGES))[0]
    assert posted.path == f"/channels/{HELPDESK}/messages"
    text = shown(posted.body)
    assert "Billing question from Jane Doe" in text and "Why two charges in March?" in text
    thread = (await d.api.wait_for("POST", THREADS))[0]
    assert thread.path == f"/channels/{HELPDESK}/messages/{posted.answer['id']}/threads"
    assert thread.body["name"] == "Billing question from Jane Doe"
    assert await d.bot.deliver_alerts() == 0  # posted once
    entries = await query(services.db, AuditFilter(actor=f"discord:{CUSTOMER}", limit=50))
    assert "customer_question" in [e.action for e in entries]


async def test_a_question_is_never_posted_into_a_support_channel(discord_bot, services):
    d = discord_bot
    services.settings.questions_channel = f"discord:{SUPPORT}"
    await verify_as_jane(d)
    asked = await d.command(CUSTOMER, "ask", SUPPORT, question="where is my refund?")
    assert "Question sent" in shown((await d.original(asked["token"])).body)
    assert await d.bot.deliver_alerts() == 0
    assert d.api.of("POST", MESSAGES) == []


async def test_the_billing_page_comes_as_a_link_button(discord_bot):
    d = discord_bot
    await verify_as_jane(d)
    asked = await d.command(CUSTOMER, "portal", SUPPORT)
    assert await d.callback(asked["id"]) == {"type": 5, "data": {"flags": 64}}
    answer = await d.original(asked["token"])
    [link] = [c for row in answer.body["components"] for c in row["components"]]
    assert link["style"] == 5 and link["url"].startswith("http://localhost:8000/portal/l/")
    assert "custom_id" not in link


async def test_a_report_answer_carries_its_csv_export(discord_bot):
    d = discord_bot
    payload = await d.command(MANAGER, "report", kind="refunds", format="csv")
    assert (await d.callback(payload["id"]))["type"] == 5
    answer = await d.original(payload["token"])
    [sent] = answer.files
    assert sent.filename.startswith("refunds-") and sent.filename.endswith(".csv")
    assert sent.data.decode("utf-8-sig").startswith('"Requested by","Reason code"')
    assert "Refunds by person and reason" in shown(answer.body)
