"""Stripe coupons: read before approval (by promotion code or coupon ID, exact percentages),
removed from a subscription or a customer's live ones, each once, through the emulator."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from bot.gateways.base import ErrorCode, GatewayError
from bot.money import Money
from tests.fakes.stripe_env import FakeStripe
from tests.gateways.test_stripe import fake  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")]


def coupons_on(stripe: FakeStripe, sub: str) -> list[str]:
    em = stripe.emulator
    return [em.get(d)["source"]["coupon"] for d in em.get(sub)["discounts"]]


async def test_a_coupon_is_read_with_its_exact_percentage_amount_and_duration(fake: FakeStripe):  # noqa: F811
    em, gw = fake.emulator, fake.gateway
    em.add_coupon("SUMMER", percent_off=12.5, duration="repeating", duration_in_months=3)
    em.add_promotion_code("SUMMER", "SUNNY")
    em.add_coupon("FIVER", amount_off=500, currency="eur", duration="once", name="Five off")
    sunny = await gw.coupon("SUNNY")
    assert sunny.code == "SUNNY" and sunny.percent_off == Decimal("12.5")
    assert sunny.describe() == "SUNNY: 12.5% off for 3 months"
    fiver = await gw.coupon("FIVER")
    assert fiver.amount_off == Money(minor=500, currency="EUR") and fiver.percent_off is None
    assert fiver.describe() == "FIVER (Five off): €5.00 off once"
    with pytest.raises(GatewayError) as missing:
        await gw.coupon("NOPE")
    assert missing.value.code == ErrorCode.not_found


async def test_removing_clears_the_discounts_once_and_a_retry_changes_nothing(fake: FakeStripe):  # noqa: F811
    em, gw = fake.emulator, fake.gateway
    em.add_coupon("HALF", percent_off=50, duration="once")
    sub_a, sub_b = fake.env.subscription_ids
    await gw.apply_coupon(fake.env.customer_id, "HALF", idempotency_key="apply-1")
    assert coupons_on(fake, sub_a) == ["HALF"] and coupons_on(fake, sub_b) == ["HALF"]
    assert await gw.remove_discount(sub_a, idempotency_key="rm-1") == sub_a
    assert coupons_on(fake, sub_a) == [] and coupons_on(fake, sub_b) == ["HALF"]
    await gw.remove_discount(sub_a, idempotency_key="rm-1")  # a recovered retry
    await gw.remove_discount(fake.env.customer_id, idempotency_key="rm-2")
    assert coupons_on(fake, sub_b) == []
    updates = [
        r for r in em.requests if r.method == "POST" and r.path == f"/v1/subscriptions/{sub_a}"
    ]
    assert len(updates) == 2  # the apply and one removal: the retry found nothing to remove


async def test_the_emulator_answers_the_delete_discount_endpoints(fake: FakeStripe):  # noqa: F811
    em = fake.emulator
    em.add_coupon("HALF", percent_off=50, duration="once")
    sub_a, _ = fake.env.subscription_ids
    await fake.gateway.apply_coupon(sub_a, "HALF", idempotency_key="apply-1")
    headers = {"Authorization": f"Bearer {fake.gateway.settings.api_key.get_secret_value()}"}
    base = str(fake.gateway.settings.base_url).rstrip("/")
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        gone = await http.delete(f"/v1/subscriptions/{sub_a}/discount")
        assert gone.status_code == 200, gone.text
        assert gone.json()["deleted"] is True and gone.json()["object"] == "discount"
        assert coupons_on(fake, sub_a) == []
        again = await http.delete(f"/v1/subscriptions/{sub_a}/discount")
        assert again.status_code == 404 and again.json()["error"]["code"] == "resource_missing"
        none = await http.delete(f"/v1/customers/{fake.env.customer_id}/discount")
        assert none.status_code == 404
