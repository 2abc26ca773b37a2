"""Gateways without coupons say so, with the reason a person can act on, for every coupon call."""

from __future__ import annotations

import pytest

from bot.gateways.base import Capability, Gateway, Unsupported
from bot.gateways.paypal.gateway import PayPalGateway
from bot.gateways.woocommerce.gateway import WooCommerceGateway


@pytest.mark.parametrize(
    ("gateway", "reason"),
    [
        (PayPalGateway, "PayPal subscriptions take no coupons"),
        (WooCommerceGateway, "WooCommerce coupons are entered at checkout"),
    ],
    ids=["paypal", "woocommerce"],
)
async def test_every_coupon_call_is_unsupported_with_the_reason(
    gateway: type[Gateway], reason: str
) -> None:
    # The calls read only the class's name and reasons: no connection is made.
    bare = object.__new__(gateway)
    assert Capability.coupon not in bare.capabilities
    for call in (
        lambda: bare.coupon("WELCOME10"),
        lambda: bare.apply_coupon("sub_1", "WELCOME10", idempotency_key="k"),
        lambda: bare.remove_discount("sub_1", idempotency_key="k"),
    ):
        with pytest.raises(Unsupported) as refused:
            await call()
        assert refused.value.message.startswith(
            f"the {gateway.name} gateway does not support coupon: {reason}"
        )
    with pytest.raises(Unsupported, match=reason):
        bare.require(Capability.coupon)
