"""Recurly coupons: read before approval, removed from the account once (Recurly has no
idempotency key: what is gone already is not removed again), against the emulator."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.recurly.gateway import RecurlyGateway
from bot.money import Money
from chargedesk_emulators.recurly import RecurlyEmulator, recurly_api
from tests.fakes.emulated_gateway import fixtures
from tests.fakes.recurly_env import Seeded, recurly_gateway, seed_contract_account

api, seeded, gateway = fixtures(recurly_api, seed_contract_account, recurly_gateway)


async def test_a_coupon_is_read_with_what_it_takes_off_and_for_how_long(
    api: RecurlyEmulator, gateway: RecurlyGateway
) -> None:
    api.add_coupon(
        "SPRING", "Spring", fixed={"USD": "5.00"}, duration="temporal", temporal=(3, "month")
    )
    api.add_coupon("TENTH", "Tenth", percent=10)
    spring = await gateway.coupon("SPRING")
    assert spring.amount_off == Money(minor=500, currency="USD")
    assert spring.describe() == "SPRING (Spring): $5.00 off for 3 months"
    tenth = await gateway.coupon("TENTH")
    assert (
        tenth.percent_off == Decimal("10") and tenth.describe() == "TENTH (Tenth): 10% off forever"
    )
    with pytest.raises(GatewayError) as missing:
        await gateway.coupon("NOPE")
    assert missing.value.code == ErrorCode.not_found


async def test_removing_ends_the_accounts_redemption_once(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.add_coupon("TENTH", "Tenth", percent=10)
    await gateway.apply_coupon(seeded.account_id, "TENTH", idempotency_key="c1")
    assert (
        await gateway.remove_discount(seeded.account_id, idempotency_key="r1") == seeded.account_id
    )
    assert [r.state for r in api.redemptions.values()] == ["inactive"]
    await gateway.remove_discount(seeded.account_id, idempotency_key="r1")  # a retry
    path = f"/accounts/{seeded.account_id}/coupon_redemptions/active"
    assert len(api.requests_to("DELETE", path)) == 1
    with pytest.raises(GatewayError) as sub:
        await gateway.remove_discount(seeded.subscription_ids[0], idempotency_key="r2")
    assert "Recurly removes coupons from an account" in sub.value.message
