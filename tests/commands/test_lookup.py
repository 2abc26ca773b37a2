"""Lookups fan out to every gateway; a failing or slow one only marks its own section."""

from __future__ import annotations

import asyncio

from bot.gateways.base import Gateway, LookupQuery
from bot.gateways.registry import Gateways
from bot.models import Customer, GatewayProfile
from tests.conftest import say


class Broken(Gateway):
    name = "broken"

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        raise ConnectionError("connection refused")


class Slow(Gateway):
    name = "slow"

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        await asyncio.sleep(30)
        return []


class Other(Gateway):
    name = "other"

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        customer = Customer(gateway=self.name, id="o_1", email=query.value, name="Jane D.")
        return (
            [GatewayProfile(gateway=self.name, customer=customer)] if query.kind == "email" else []
        )


async def test_lookup_by_email_shows_the_whole_profile(services, agent):
    reply = await say(services, agent, "lookup Jane.Doe@example.com")
    card = reply.cards[0]
    text = card.model_dump_json()
    assert card.title == "Jane Doe"
    for expected in ("ch_jane_1", "sub_jane_pro", "Disputes", "overdue", "Lifetime value"):
        assert expected in text
    assert card.tone == "danger"  # a dispute is open


async def test_lookup_by_charge_invoice_and_customer_id(services, agent):
    for ref in ("ch_jane_1", "cus_jane", "in_jane_overdue", "sub_jane_pro", "dp_jane_1"):
        reply = await say(services, agent, f"lookup {ref}")
        assert reply.cards[0].title == "Jane Doe", ref


async def test_a_failing_and_a_slow_gateway_mark_their_sections_and_the_rest_shows(services, agent):
    ledger = services.gateways.get("ledger")
    services.gateways = Gateways([ledger, Broken(), Slow(), Other()], timeout=0.3)
    reply = await say(services, agent, "lookup jane.doe@example.com")
    assert reply.error is None
    sections = {s.title: s for s in reply.cards[0].sections if s.title}
    assert sections["broken: unavailable"].tone == "danger"
    assert "did not answer within 0.3 s" in sections["slow: unavailable"].text
    assert (
        "ledger:cus_jane" in reply.cards[0].model_dump_json()
        and "other:o_1" in reply.cards[0].model_dump_json()
    )


async def test_an_id_in_two_gateways_must_be_qualified(services, agent):
    class Twin(Gateway):
        name = "twin"

        async def get_charge(self, charge_id: str):
            return await ledger.get_charge(charge_id)

    ledger = services.gateways.get("ledger")
    services.gateways = Gateways([ledger, Twin()], timeout=2)
    reply = await say(services, agent, "refund ch_jane_1 1 reason: duplicate x")
    assert reply.error.code == "ambiguous"
    assert "ledger:ch_jane_1" in reply.error.message
    qualified = await say(services, agent, "refund ledger:ch_jane_1 1 reason: duplicate x")
    assert qualified.approval.state == "succeeded"


async def test_unsupported_capability_names_gateway_and_capability(services):
    from bot.gateways.base import Unsupported

    try:
        await Other().void("ch_1", idempotency_key="k")
    except Unsupported as exc:
        assert exc.message == "the other gateway does not support void"
    else:
        raise AssertionError("void should be unsupported")
