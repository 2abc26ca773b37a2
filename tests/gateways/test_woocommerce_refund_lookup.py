"""`lookup <refund id>` on WooCommerce: the refund's order, and so its customer, through our
client against the emulated store (`GET /refunds?include=`, whose `parent_id` is the order)."""

from __future__ import annotations

from urllib.parse import parse_qs

from bot.gateways.base import LookupQuery
from bot.gateways.registry import Gateways
from bot.gateways.woocommerce.gateway import WooCommerceGateway
from chargedesk_emulators.woocommerce import PREFIX, WooCommerceEmulator, woocommerce_api
from tests.conftest import say
from tests.fakes.emulated_gateway import fixtures
from tests.fakes.woocommerce_env import Seeded, seed_contract_customer, woocommerce_gateway

api, seeded, gateway = fixtures(woocommerce_api, seed_contract_customer, woocommerce_gateway)


async def test_a_refund_number_finds_the_account_that_owns_its_order(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    refund_id = api.refund_in_dashboard(int(seeded.charge_id), "30.00")
    api.add_order("12.00", email="someone@example.com")  # refunds of others stay out
    for typed in (str(refund_id), f"#{refund_id}"):
        (profile,) = await gateway.lookup(LookupQuery.parse(typed))
        assert profile.customer.id == seeded.customer_id
        (refund,) = [r for r in profile.refunds if r.id == str(refund_id)]
        assert (refund.charge_id, refund.amount.minor) == (seeded.charge_id, 3000)
    (asked,) = {
        tuple(parse_qs(e.raw_query)["include"]) for e in api.requests_to("GET", f"{PREFIX}/refunds")
    }
    assert asked == (str(refund_id),)


async def test_a_refund_number_of_a_guest_order_finds_the_guest_by_email(
    api: WooCommerceEmulator, gateway: WooCommerceGateway
) -> None:
    order = api.add_order(
        "40.00", email="gus@example.com", name=("Gus", "Guest"), payment_method="cod"
    )
    refund_id = api.refund_in_dashboard(order, "40.00", api_refund=False)
    (profile,) = await gateway.lookup(LookupQuery.parse(str(refund_id)))
    assert (profile.customer.id, profile.customer.email) == ("gus@example.com", "gus@example.com")
    assert [r.id for r in profile.refunds] == [str(refund_id)]


async def test_an_order_id_is_still_read_as_an_order_without_asking_for_refunds(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    api.refund_in_dashboard(int(seeded.charge_id), "5.00")
    (profile,) = await gateway.lookup(LookupQuery.parse(seeded.charge_id))
    assert profile.customer.id == seeded.customer_id
    assert api.requests_to("GET", f"{PREFIX}/refunds") == []


async def test_a_store_without_the_refunds_endpoint_finds_nobody_by_refund_number() -> None:
    with woocommerce_api(refunds_endpoint=False) as store:
        seeded = seed_contract_customer(store)
        refund_id = store.refund_in_dashboard(int(seeded.charge_id), "30.00")
        ours = woocommerce_gateway(store)
        try:
            assert await ours.lookup(LookupQuery.parse(str(refund_id))) == []
            # It asked, was told there is no such route, and did not retry.
            assert len(store.requests_to("GET", f"{PREFIX}/refunds")) == 1
        finally:
            await ours.close()


async def test_an_unknown_number_is_not_a_refund_either(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    assert await gateway.lookup(LookupQuery.parse("9999999")) == []
    assert len(api.requests_to("GET", f"{PREFIX}/refunds")) == 1


async def test_lookup_of_a_refund_number_shows_the_customers_card_naming_the_refund(
    services, agent, api: WooCommerceEmulator, seeded: Seeded
) -> None:  # type: ignore[no-untyped-def]
    refund_id = api.refund_in_dashboard(int(seeded.charge_id), "30.00")
    gateway = woocommerce_gateway(api)
    services.gateways = Gateways([gateway], timeout=10)
    try:
        reply = await say(services, agent, f"lookup {refund_id}")
    finally:
        await gateway.close()
    assert reply.error is None, reply.error
    (card,) = reply.cards
    named = {s.title: s.text or "" for s in card.sections if s.title}
    assert f"of charge {seeded.charge_id}" in named[f"Refund {refund_id}"]
    assert card.title == "Jane Doe"
    assert f"name woocommerce:{seeded.customer_id} reason: " in [b.command for b in card.actions]
