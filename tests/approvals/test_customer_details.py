"""`tax-id`, `address`, `name`: customer details checked before approval, changed once, audited."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.actors import Actor
from bot.approvals.policy import ActionPolicy
from bot.chat.discord.render import form_modal
from bot.chat.slack.render import card_blocks, form_view
from bot.commands import COMMANDS, Context
from bot.commands.forms import form_for, submit
from bot.gateways.base import LookupQuery
from bot.gateways.paypal.gateway import PayPalGateway
from bot.gateways.registry import Gateways
from bot.services import Services
from bot.settings import PayPalSettings
from bot.store.tables import ApprovalRow, AuditEntry, LedgerCustomer
from tests.conftest import CHANNEL, say
from tests.fakes.stripe_env import stripe_fake

pytestmark = pytest.mark.approvals


async def ledger_customer(services: Services, customer_id: str) -> LedgerCustomer:
    async with services.db.read() as s:
        row = await s.get(LedgerCustomer, customer_id)
        assert row is not None
        return row


async def count(services: Services, table: type) -> int:
    async with services.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(table)) or 0)


async def test_an_invalid_vat_id_is_a_one_line_error_and_changes_nothing(services, agent):
    reply = await say(services, agent, "tax-id cus_jane DE123456789 reason: customer asked")
    assert reply.error is not None and reply.error.code == "invalid_tax_id"
    assert (
        reply.error.message == "DE123456789 is not a valid EU VAT number for DE: check its digits"
    )
    assert (await ledger_customer(services, "cus_jane")).tax_id_value is None
    assert await count(services, ApprovalRow) == 0


async def test_an_agent_adds_a_valid_vat_id_alone_and_it_is_audited(services, agent):
    # Jane lives in Ireland: her number may be typed without its prefix.
    reply = await say(services, agent, "tax-id cus_jane 6388047V reason: customer asked by email")
    assert reply.error is None, reply.error
    assert reply.approval is not None and reply.approval.state == "succeeded"
    row = await ledger_customer(services, "cus_jane")
    assert (row.tax_id_type, row.tax_id_value) == ("eu_vat", "IE6388047V")
    async with services.db.read() as s:
        actions = list(await s.scalars(select(AuditEntry.action)))
    assert "tax-id" in actions
    again = await say(services, agent, "tax-id cus_jane IE6388047V reason: asked again")
    assert again.error is not None and again.error.code == "unchanged"


async def test_a_tax_id_is_removed_and_a_number_the_customer_lacks_is_refused(services, agent):
    missing = await say(services, agent, "tax-id cus_kowalski remove PL5213017228 reason: typo")
    assert missing.error is not None
    assert missing.error.message == "cus_kowalski has no tax ID PL5213017228"
    reply = await say(services, agent, "tax-id cus_kowalski remove PL5260250274 reason: closed")
    assert reply.error is None, reply.error
    assert (await ledger_customer(services, "cus_kowalski")).tax_id_value is None


async def test_a_valid_vat_id_is_added_at_the_emulator_once_even_when_approved_twice(
    services, agent, manager, other_manager
):
    services.policy = services.policy.model_copy(update={"tax_id": ActionPolicy()})
    async with stripe_fake() as fake:
        services.gateways = Gateways([*services.gateways, fake.gateway], timeout=10)
        customer = fake.env.customer_id
        asked = await say(
            services, agent, f"tax-id stripe:{customer} DE136695976 reason: customer's VAT ID"
        )
        assert asked.approval is not None and asked.approval.state == "pending", asked.error
        approval = asked.approval.id
        replies = await asyncio.gather(
            say(services, manager, f"approve {approval}"),
            say(services, other_manager, f"approve {approval}"),
            say(services, manager, f"approve {approval}"),
        )
        assert any(r.approval and r.approval.state == "succeeded" for r in replies)
        created = [
            r for r in fake.emulator.requests
            if r.method == "POST" and r.path == f"/v1/customers/{customer}/tax_ids"
        ]  # fmt: skip
        assert len(created) == 1
        assert created[0].params == {"type": "eu_vat", "value": "DE136695976"}
        [profile] = [
            p for p in await fake.gateway.lookup(LookupQuery("id", customer))
            if p.customer.id == customer
        ]  # fmt: skip
        assert [t.value for t in profile.tax_ids] == ["DE136695976"]


async def test_an_address_is_typed_on_one_line_and_replaces_the_old_one(services, agent):
    reply = await say(
        services, agent, "address cus_jane Friedrichstraße 68, 10117 Berlin, de reason: moved"
    )
    assert reply.error is None, reply.error
    assert (await ledger_customer(services, "cus_jane")).address == {
        "line1": "Friedrichstraße 68", "postal_code": "10117", "city": "Berlin", "country": "DE",
    }  # fmt: skip
    uk = await say(
        services, agent, "address cus_john 10 Downing St, Flat 2, SW1A 2AA London, GB reason: moved"
    )
    assert uk.error is None, uk.error
    assert (await ledger_customer(services, "cus_john")).address == {
        "line1": "10 Downing St", "line2": "Flat 2", "postal_code": "SW1A 2AA", "city": "London",
        "country": "GB",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("address cus_jane Berlin reason: moved", "write <street>, [<line 2>,] <postal code>"),
        ("address cus_jane Main St 1, 10117 Berlin, XX reason: moved", "is not a country code"),
        (
            "address cus_jane reason: moved",
            "address: line1 is required: address <customer> <street>",
        ),
    ],
)
async def test_a_bad_address_is_a_one_line_error_and_changes_nothing(
    services, agent, line, message
):
    before = (await ledger_customer(services, "cus_jane")).address
    reply = await say(services, agent, line)
    assert reply.error is not None and message in reply.error.message
    assert "\n" not in reply.error.message
    assert (await ledger_customer(services, "cus_jane")).address == before


async def test_the_address_form_asks_for_each_field_and_runs_the_same_command(services, agent):
    ctx = Context(services, agent, CHANNEL)
    raw = {"customer": "ledger:cus_jane", "reason": ""}
    form = await form_for(ctx, COMMANDS["address"], raw, "Address")
    assert form.given == {"customer": "ledger:cus_jane"}
    names = [f.name for f in form.fields]
    # Five at most before the optional ones: a Discord modal shows five inputs.
    assert names == ["line1", "town", "country", "reason_text", "line2", "state"]
    assert [f.name for f in form.fields if not f.optional] == names[:4]
    modal = form_modal(form)
    assert modal is not None and [i.custom_id for i in modal.inputs] == names[:5]
    assert len(form_view(form, metadata="m")["blocks"]) == len(names)  # Slack: every field
    reply = await submit(ctx, form, {
        "line1": "Rue de Rivoli 1", "town": "75001 Paris", "country": "FR",
        "reason_text": "moved to Paris",
    })  # fmt: skip
    assert reply.error is None, reply.error
    assert (await ledger_customer(services, "cus_jane")).address["city"] == "Paris"
    tax = await form_for(ctx, COMMANDS["tax-id"], raw, "Tax ID")
    assert [f.name for f in tax.fields] == ["tax_id", "mode", "reason_text"]


async def test_a_line_break_in_an_address_or_a_name_is_refused(services, agent):
    ctx = Context(services, agent, CHANNEL)
    form = await form_for(ctx, COMMANDS["address"], {"customer": "ledger:cus_jane"}, "Address")
    crlf = await submit(ctx, form, {
        "line1": "Main St 1\r\nBcc: victim@example.com", "town": "Berlin", "country": "DE",
        "reason_text": "moved",
    })  # fmt: skip
    assert crlf.error is not None and "\n" not in crlf.error.message
    name_form = await form_for(ctx, COMMANDS["name"], {"customer": "ledger:cus_jane"}, "Name")
    lf = await submit(ctx, name_form, {"name": "Jane\nBcc: x@example.com", "reason_text": "typo"})
    assert lf.error is not None and "must be one line" in lf.error.message
    row = await ledger_customer(services, "cus_jane")
    assert (row.name, row.address["line1"]) == ("Jane Doe", "14 Merrion Square")


async def test_a_name_with_mrkdwn_and_html_is_shown_as_typed_in_the_slack_card(services, agent):
    reply = await say(services, agent, "name cus_jane *mrkdwn* <script>x</script> reason: rename")
    assert reply.error is None, reply.error
    assert (await ledger_customer(services, "cus_jane")).name == "*mrkdwn* <script>x</script>"
    blocks = json.dumps(card_blocks(reply.cards[0]))
    assert "<script>" not in blocks and "&lt;script&gt;" in blocks


async def test_paypal_says_unsupported_with_reason_before_approval(services, agent: Actor):
    paypal = PayPalGateway(PayPalSettings(
        client_id="id", client_secret=SecretStr("secret"), base_url="http://127.0.0.1:9",
    ))  # fmt: skip
    services.gateways = Gateways([*services.gateways, paypal], timeout=2)
    try:
        for line in (
            "tax-id paypal:PAYER1 DE136695976 reason: asked",
            "address paypal:PAYER1 Main St 1, 10117 Berlin, DE reason: moved",
            "name paypal:PAYER1 Jane reason: rename",
        ):
            reply = await say(services, agent, line)
            assert reply.error is not None and reply.error.code == "unsupported", line
            assert "PayPal payer details belong to the payer" in reply.error.message
        assert await count(services, ApprovalRow) == 0
    finally:
        await paypal.close()


async def test_a_repeated_address_request_asks_first_and_again_repeats_it(services, agent):
    services.policy = services.policy.model_copy(update={"address": ActionPolicy()})
    line = "address cus_jane 10 Downing St, Flat 2, SW1A 2AA London, GB reason: moved"
    first = await say(services, agent, line)
    assert first.approval is not None and first.approval.state == "pending"
    repeated = await say(services, agent, line)
    assert repeated.error is not None and repeated.approval is None
    [button] = repeated.cards[0].actions
    assert button.command == f"again {first.approval.id}"
    again = await say(services, agent, button.command)
    assert again.approval is not None and again.approval.state == "pending", again.error
    assert await count(services, ApprovalRow) == 2
