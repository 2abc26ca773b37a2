"""Stripe subscriptions beyond cancel: prices, starting one, plan changes priced by
`POST /v1/invoices/create_preview`, and pausing collection.

A plan change now is previewed with a `proration_date` and carried out with the same one,
so Stripe charges exactly what the preview said; `always_invoice` bills it at once. A change
at renewal is a subscription schedule: the current phase runs to the period's end, the next
bills the new price, then the schedule releases the subscription (`end_behavior: release`).
"""

from __future__ import annotations

from typing import Any

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.stripe.client import StripeAPI
from bot.gateways.stripe.mapping import (
    KEY_META,
    NAME,
    PLAN_META,
    expandable_id,
    from_stripe_amount,
    metadata_of,
    subscription_period,
)
from bot.models import PlanChange, PlanPrice
from bot.money import Money

ENDED = ("canceled", "incomplete_expired")


def _price_of(raw: dict[str, Any]) -> PlanPrice:
    recurring = raw.get("recurring") or {}
    if not recurring:
        raise GatewayError(
            ErrorCode.rejected,
            f"price {raw['id']} is a one-time price: a subscription needs a recurring one",
            gateway=NAME,
        )
    count = recurring.get("interval_count") or 1
    interval = recurring.get("interval") or "month"
    return PlanPrice(
        gateway=NAME,
        id=raw["id"],
        name=raw.get("nickname") or raw.get("lookup_key") or raw["id"],
        amount=from_stripe_amount(raw.get("unit_amount") or 0, raw["currency"]),
        interval=interval if count == 1 else f"{count} {interval}s",
    )


async def get_price(api: StripeAPI, price_id: str) -> PlanPrice:
    if not price_id.startswith(("price_", "plan_")):
        raise GatewayError(ErrorCode.not_found, f"Stripe has no price {price_id}", gateway=NAME)
    raw = await api.get(lambda: api.v1.prices.retrieve_async(price_id), f"price {price_id}")
    if not raw.get("active", True):
        raise GatewayError(ErrorCode.invalid_state, f"price {price_id} is archived", gateway=NAME)
    return _price_of(raw)


def create_params(
    customer_id: str,
    price: str,
    key: str,
    *,
    quantity: int,
    trial_days: int | None,
    discount: dict[str, str] | None,
) -> dict[str, Any]:
    """What `POST /v1/subscriptions` gets for `subscribe` (legacy `plan_` IDs as plans)."""
    item: dict[str, Any] = {"plan" if price.startswith("plan_") else "price": price}
    item["quantity"] = quantity
    params: dict[str, Any] = {"customer": customer_id, "items": [item], "metadata": {KEY_META: key}}
    if trial_days:
        params["trial_period_days"] = trial_days
    if discount:
        params["discounts"] = [discount]
    return params


def _only_item(sub: dict[str, Any]) -> dict[str, Any]:
    items = (sub.get("items") or {}).get("data") or []
    if len(items) != 1:
        raise GatewayError(
            ErrorCode.rejected,
            f"subscription {sub['id']} has {len(items)} items: change its plan in the dashboard",
            gateway=NAME,
        )
    return items[0]


def _details(item: dict[str, Any], change: PlanChange) -> dict[str, Any]:
    return {
        "items": [{"id": item["id"], "price": change.price, "quantity": change.quantity}],
        "proration_behavior": "always_invoice" if change.prorate else "none",
        "proration_date": change.at,
    }


async def preview(
    api: StripeAPI, sub: dict[str, Any], price: PlanPrice, *, now: bool, prorate: bool, at: int
) -> PlanChange:
    """What the change charges today, from Stripe's own preview of the invoice it bills now;
    at renewal nothing today and the new price from the current period's end."""
    if sub.get("status") in ENDED:
        raise GatewayError(
            ErrorCode.invalid_state, f"subscription {sub['id']} is canceled", gateway=NAME
        )
    item = _only_item(sub)
    quantity = item.get("quantity") or 1
    currency = price.amount.currency
    if (sub.get("currency") or currency).upper() != currency:
        raise GatewayError(
            ErrorCode.currency_mismatch,
            f"price {price.id} is in {currency}: {sub['id']} bills {sub['currency'].upper()}",
            gateway=NAME,
        )
    change = PlanChange(
        gateway=NAME, subscription_id=sub["id"], price=price.id, plan=price.name, now=now,
        prorate=prorate, at=at, due_now=Money(minor=0, currency=currency),
        recurring=Money(minor=price.amount.minor * quantity, currency=currency),
        interval=price.interval, quantity=quantity,
    )  # fmt: skip
    if not now:
        period = subscription_period(sub)
        if period is None:
            raise GatewayError(
                ErrorCode.invalid_state, f"subscription {sub['id']} has no period", gateway=NAME
            )
        return change.model_copy(update={"starts_at": period[1]})
    if not prorate:
        return change
    invoice = await api.get(
        lambda: api.v1.invoices.create_preview_async(
            {
                "customer": sub["customer"],
                "subscription": sub["id"],
                "subscription_details": _details(item, change),
            }
        ),
        f"the preview of {sub['id']} on {price.id}",
    )
    due = from_stripe_amount(invoice.get("total") or 0, invoice.get("currency") or currency)
    return change.model_copy(update={"due_now": due})


async def change_plan(
    api: StripeAPI, sub: dict[str, Any], change: PlanChange, key: str
) -> dict[str, Any]:
    """Carry out the previewed change with its proration date; the request ID is the key."""
    item = _only_item(sub)
    if (
        metadata_of(sub).get(KEY_META) == key
        and (item.get("price") or {}).get("id") == change.price
    ):
        return sub  # ours, done already (Stripe forgets idempotency keys after 24 hours)
    return await api.get(
        lambda: api.v1.subscriptions.update_async(
            sub["id"],
            {**_details(item, change), "metadata": {KEY_META: key}},
            {"idempotency_key": key},
        ),
        f"the plan change of {sub['id']}",
    )


def _duration(interval: str) -> dict[str, Any]:
    """A phase of one billing period (`month`, `3 months`) as Stripe's phase `duration`
    (`iterations`, which counted periods, is gone since API 2025-09-30)."""
    count, _, unit = interval.rpartition(" ")
    return {"interval": unit.removesuffix("s"), "interval_count": int(count or 1)}


async def schedule_change(
    api: StripeAPI, sub: dict[str, Any], change: PlanChange, key: str
) -> dict[str, Any]:
    """The change at renewal as the subscription's schedule: made from the subscription, or
    its own schedule updated (a subscription has one at most). Both calls carry the key, and
    a schedule that already says what this change asks is left as it is."""
    item = _only_item(sub)
    schedule_id = expandable_id(sub.get("schedule"))
    what = f"the schedule of {sub['id']}"
    if schedule_id is None:
        schedule = await api.get(
            lambda: api.v1.subscription_schedules.create_async(
                {"from_subscription": sub["id"]}, {"idempotency_key": f"{key}:schedule"}
            ),
            what,
        )
    else:
        schedule = await api.get(
            lambda: api.v1.subscription_schedules.retrieve_async(schedule_id), what
        )
    if metadata_of(schedule).get(KEY_META) == key:
        return schedule  # ours, done already
    period = subscription_period(sub)
    current = schedule.get("current_phase") or {}
    if period is None or not current:
        raise GatewayError(
            ErrorCode.invalid_state, f"{sub['id']} has no current period to keep", gateway=NAME
        )
    phases = [
        {
            "start_date": current["start_date"],
            "end_date": int(period[1].timestamp()),
            "items": [{"price": item["price"]["id"], "quantity": item.get("quantity") or 1}],
        },
        {  # one period of the new price, then the subscription is released onto it
            "items": [{"price": change.price, "quantity": change.quantity}],
            "duration": _duration(change.interval),
            "metadata": {PLAN_META: change.plan},
        },
    ]
    return await api.get(
        lambda: api.v1.subscription_schedules.update_async(
            schedule["id"],
            {
                "phases": phases,
                "end_behavior": "release",
                "proration_behavior": "none",
                "metadata": {KEY_META: key},
            },
            {"idempotency_key": f"{key}:phases"},
        ),
        what,
    )


async def set_paused(api: StripeAPI, sub: dict[str, Any], paused: bool, key: str) -> dict[str, Any]:
    """`pause_collection[behavior]=void` (invoices made while paused are voided), or unset it."""
    if sub.get("status") in ENDED:
        raise GatewayError(
            ErrorCode.invalid_state, f"subscription {sub['id']} is canceled", gateway=NAME
        )
    if bool(sub.get("pause_collection")) == paused:
        return sub  # already so: the same result
    value: Any = {"behavior": "void"} if paused else ""
    return await api.get(
        lambda: api.v1.subscriptions.update_async(
            sub["id"], {"pause_collection": value}, {"idempotency_key": key}
        ),
        f"{'pausing' if paused else 'resuming'} {sub['id']}",
    )
