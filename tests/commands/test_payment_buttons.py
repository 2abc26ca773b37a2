"""Charge and Request payment on the customer card: offered where the gateway can, as forms."""

from __future__ import annotations

import json

import pytest

from bot.actors import Role
from bot.cards.billing import profile_card
from bot.cards.model import Reply
from bot.chat.discord.render import command_of, reply_message
from bot.chat.slack.render import card_blocks
from bot.commands.forms import asks_first, form_for
from bot.commands.router import COMMANDS, Context, parse
from bot.models import BillingProfile, Customer, GatewayProfile
from tests.conftest import CHANNEL, person, say

pytestmark = pytest.mark.storage

WANTED = {"Charge": "charge ledger:cus_jane reason: ",
          "Request payment": "request ledger:cus_jane reason: "}  # fmt: skip


def profile(*gateways: tuple[str, frozenset[str] | None]) -> BillingProfile:
    return BillingProfile(
        query="jane@example.com",
        profiles=tuple(
            GatewayProfile(
                gateway=name, customer=Customer(gateway=name, id="cus_jane"), capabilities=can
            )
            for name, can in gateways
        ),
    )


async def test_the_ledger_card_offers_charge_and_request_as_buttons(services, agent) -> None:
    (card,) = (await say(services, agent, "lookup jane.doe@example.com")).cards
    offered = {b.label: b.command for b in card.actions}
    assert {k: offered.get(k) for k in WANTED} == WANTED


def test_a_gateway_without_the_capability_gets_no_button() -> None:
    card = profile_card(profile(("paypal", frozenset({"lookup", "refund"}))), locale="en_US")
    assert not [b for b in card.actions if b.command.split()[0] in ("charge", "request")]
    card = profile_card(profile(("stripe", frozenset({"payment_link"}))), locale="en_US")
    assert [b.label for b in card.actions if b.command.startswith(("charge", "request"))] == [
        "Request payment"
    ]


def test_with_several_gateways_the_buttons_name_theirs() -> None:
    both = frozenset({"charge_saved_card", "payment_link"})
    card = profile_card(profile(("ledger", both), ("stripe", both)), locale="en_US")
    labels = [b.label for b in card.actions if b.command.startswith(("charge ", "request "))]
    assert labels == ["Charge (ledger)", "Request payment (ledger)"]


async def test_slack_blocks_and_discord_components_carry_the_commands(services, agent) -> None:
    (card,) = (await say(services, agent, "lookup jane.doe@example.com")).cards
    blocks = json.dumps(card_blocks(card))
    for label, command in WANTED.items():
        assert f'"text": "{label}"' in blocks and json.dumps(command)[1:-1].strip() in blocks
    message = reply_message(Reply(cards=[card]))
    commands = {command_of(b.custom_id) for row in message.rows for b in row}
    assert {"charge ledger:cus_jane", "request ledger:cus_jane"} <= commands


@pytest.mark.parametrize("line", sorted(WANTED.values()))
async def test_each_button_opens_a_form_asking_amount_and_what_for(
    services, agent, line: str
) -> None:
    spec, raw = parse(line)
    assert asks_first(spec, raw)
    form = await form_for(Context(services, agent, CHANNEL), spec, raw, line.split()[0])
    fields = {f.name: f for f in form.fields}
    assert form.given == {"customer": "ledger:cus_jane"}
    assert {"amount", "description", "reason"} <= set(fields)
    assert not fields["amount"].optional and "12.50 EUR" in (fields["amount"].hint or "")


def test_read_only_staff_may_run_neither() -> None:
    viewer, agent = person("vic", Role.viewer), person("alex", Role.agent)
    for name in ("charge", "request"):
        assert not COMMANDS[name].allowed(viewer) and COMMANDS[name].allowed(agent)
