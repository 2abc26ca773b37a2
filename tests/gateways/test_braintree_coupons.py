"""Braintree coupons are the account's discounts, added to and removed from subscriptions by
updating them, each once (read first: Braintree has no idempotency key); a customer has none."""

from __future__ import annotations

import pytest

from bot.gateways.base import ErrorCode, GatewayError, LookupQuery, Unsupported
from bot.gateways.braintree.gateway import BraintreeGateway
from bot.money import Money
from chargedesk_emulators.braintree import BraintreeEmulator, braintree_api
from tests.fakes.braintree_env import (
    EMAIL,
    Seeded,
    braintree_gateway,
    seed_contract_customer,
)
from tests.fakes.emulated_gateway import fixtures

api, seeded, gateway = fixtures(braintree_api, seed_contract_customer, braintree_gateway)


def updates(api: BraintreeEmulator, sub: str) -> int:
    return len([r for r in api.requests_to("PUT", f"/subscriptions/{sub}") if r.path.endswith(sub)])


async def test_a_discount_is_read_in_the_currency_of_the_subscription(
    api: BraintreeEmulator, gateway: BraintreeGateway
) -> None:
    api.add_discount("LOYAL5", "Loyalty", "5.00", cycles=3)
    found = await gateway.coupon("LOYAL5", currency="USD")
    assert found.amount_off == Money(minor=500, currency="USD")
    assert found.describe() == "LOYAL5 (Loyalty): $5.00 off for 3 months"
    with pytest.raises(GatewayError) as missing:
        await gateway.coupon("NOPE", currency="USD")
    assert missing.value.code == ErrorCode.not_found


async def test_a_discount_is_added_and_removed_once(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    api.add_discount("LOYAL5", "Loyalty", "5.00")
    sub = seeded.subscription_ids[0]
    assert await gateway.apply_coupon(sub, "LOYAL5", idempotency_key="a1") == (
        "LOYAL5 (Loyalty): $5.00 off forever"
    )
    await gateway.apply_coupon(sub, "LOYAL5", idempotency_key="a1")  # a retry
    assert api.subscriptions[sub].discounts == ["LOYAL5"]
    assert updates(api, sub) == 1
    (profile,) = await gateway.lookup(LookupQuery.parse(EMAIL))
    assert profile.discounts == (f"LOYAL5 (Loyalty): $5.00 off forever, on {sub}",)
    await gateway.remove_discount(sub, idempotency_key="r1")
    await gateway.remove_discount(sub, idempotency_key="r1")  # gone already: nothing sent
    assert api.subscriptions[sub].discounts == []
    assert updates(api, sub) == 2


async def test_a_customer_has_no_discounts_of_their_own(
    gateway: BraintreeGateway, seeded: Seeded
) -> None:
    with pytest.raises(Unsupported) as refused:
        await gateway.precheck_coupon(seeded.customer_id, subscription=False, remove=False)
    assert refused.value.message == (
        "the braintree gateway does not support coupon: Braintree discounts go on "
        "subscriptions, not on a customer: name one of the customer's subscriptions"
    )
