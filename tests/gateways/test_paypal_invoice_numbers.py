"""`lookup INV-0042`: a PayPal invoice number finds its customer through Invoicing v2's
search (`invoice_number`), then the usual profile by the e-mail it was sent to."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from bot.gateways.base import LookupQuery
from bot.gateways.paypal.gateway import PayPalGateway
from bot.gateways.registry import Gateways
from chargedesk_emulators.paypal import paypal_api, schema_problems
from tests.conftest import say
from tests.fakes.emulated_gateway import fixtures
from tests.fakes.paypal_env import EMAIL, paypal_gateway, seed_contract_payer

api, seeded, gateway = fixtures(paypal_api, seed_contract_payer, paypal_gateway)


def searched_numbers(api) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        json.loads(e.body)["invoice_number"]
        for e in api.requests_to("POST", "/v2/invoicing/search-invoices")
        if "invoice_number" in json.loads(e.body)
    ]


async def test_a_paypal_invoice_number_finds_its_payers_whole_profile(api, seeded, gateway):
    invoice_id = api.add_invoice(EMAIL, "80.00", number="INV-0042")
    api.add_invoice("someone.else@example.com", "5.00", number="INV-0043")
    (profile,) = await gateway.lookup(LookupQuery("invoice_number", "INV-0042"))
    assert profile.customer.id == seeded.payer_id and profile.customer.email == EMAIL
    assert invoice_id in {i.id for i in profile.invoices}
    assert seeded.charge_id in {c.id for c in profile.charges}  # the usual profile
    assert searched_numbers(api) == ["INV-0042"]
    assert schema_problems(api.exchanges, requests=True) == []


async def test_an_unknown_paypal_invoice_number_finds_nobody(api, seeded, gateway):
    api.add_invoice(EMAIL, "80.00", number="INV-0042")
    assert await gateway.lookup(LookupQuery("invoice_number", "INV-0099")) == []
    assert api.requests_to("GET", "/v1/reporting/transactions") == []  # no search after


def test_paypal_answers_invoice_number_lookups() -> None:
    assert "invoice_number" in PayPalGateway.lookup_kinds


@pytest.fixture
async def beside(services, api, gateway) -> AsyncIterator[None]:  # type: ignore[no-untyped-def]
    services.gateways = Gateways([*services.gateways, gateway], timeout=10)
    yield


@pytest.mark.storage
async def test_lookup_command_with_a_paypal_invoice_number_shows_the_payer(
    services, api, seeded, beside, agent
):
    api.add_invoice(EMAIL, "80.00", number="INV-0042")
    reply = await say(services, agent, "lookup INV-0042")
    assert reply.error is None, reply.error
    assert seeded.payer_id in str(reply.cards) and EMAIL in str(reply.cards)
    assert searched_numbers(api) == ["INV-0042"]
