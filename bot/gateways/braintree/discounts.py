"""Braintree discounts: a coupon is one of the account's discounts (set up in the Control
Panel, an amount off each bill), added to or removed from a subscription by updating it.

Braintree has no idempotency key: every change reads the subscription first, so a discount
already on it is not added twice and one already gone is not removed twice. A customer has
no discounts of their own at Braintree, only their subscriptions do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.gateways.base import Capability, ErrorCode, GatewayError, Unsupported
from bot.gateways.braintree.client import BraintreeAPI
from bot.gateways.braintree.mapping import NAME, field, money_from_braintree
from bot.models import Coupon

ON_SUBSCRIPTIONS = (
    "Braintree discounts go on subscriptions, not on a customer: name one of the customer's "
    "subscriptions"
)
_LIVE = ("Active", "Past Due", "Pending")


def coupon_of(discount: Any, currency: str) -> Coupon:
    """A Braintree discount as ours: its amount in the currency of what it goes on."""
    cycles = field(discount, "number_of_billing_cycles")
    return Coupon(
        gateway=NAME,
        code=str(discount.id),
        name=field(discount, "name"),
        amount_off=money_from_braintree(discount.amount, currency),
        duration="forever" if field(discount, "never_expires") else "repeating",
        duration_in_months=int(cycles) if cycles else None,  # monthly plans: a cycle a month
    )


def describe(discounts: Iterable[Any], currency: str, subscription_id: str) -> list[str]:
    """The card's words for a subscription's discounts."""
    return [f"{coupon_of(d, currency).describe()}, on {subscription_id}" for d in discounts]


async def find(api: BraintreeAPI, code: str, currency: str | None) -> Coupon:
    if currency is None:
        raise Unsupported(NAME, Capability.coupon, ON_SUBSCRIPTIONS)
    found = await api.read(lambda sdk: sdk.discount.all(), verb="list", what="discounts")
    discount = next((d for d in found if str(d.id) == code), None)
    if discount is None:
        raise GatewayError(ErrorCode.not_found, f"Braintree has no discount {code}", gateway=NAME)
    return coupon_of(discount, currency)


async def change(api: BraintreeAPI, subscription: Any, code: str | None) -> None:
    """Add discount `code` to the subscription (None: remove every discount it has)."""
    sub_id = str(subscription.id)
    if field(subscription, "status") not in _LIVE:
        raise GatewayError(
            ErrorCode.invalid_state,
            f"subscription {sub_id} is {str(field(subscription, 'status')).lower()} at Braintree",
            gateway=NAME,
        )
    current = [str(d.id) for d in field(subscription, "discounts") or []]
    if code is None:
        wanted: dict[str, Any] = {"remove": current} if current else {}
    else:
        wanted = {} if code in current else {"add": [{"inherited_from_id": code}]}
    if not wanted:
        return  # as asked already: applying twice is applying once, removing twice too
    await api.write(
        lambda sdk: sdk.subscription.update(sub_id, {"discounts": wanted}),
        verb="change",
        what=f"the discounts of subscription {sub_id}",
    )
