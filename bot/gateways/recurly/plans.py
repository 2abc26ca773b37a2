"""Recurly subscriptions beyond cancel and pause: plans as prices, starting a subscription
(`POST /subscriptions`) and plan changes priced by Recurly's own preview
(`POST /subscriptions/{id}/change/preview`, then `POST /subscriptions/{id}/change`).

- A price here is a plan code and one of its currencies, `pro-monthly:EUR`; a plan with one
  currency may be named by its code alone.
- Recurly keeps no idempotency key: a subscription we start carries our reference in its
  customer notes, so a retry (or a read after an answer that never came) finds it.
- Recurly prorates a change made now itself, as of the moment it is made, and has no way to
  ask for the proration of another moment: the change is previewed again just before it is
  made and refused when that preview differs from the one approved.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.recurly.client import RecurlyAPI, listing
from bot.gateways.recurly.mapping import (
    NAME,
    Json,
    has_reference,
    money_from_recurly,
    plan_interval,
    reference_note,
)
from bot.models import PlanChange, PlanPrice
from bot.money import Money

UNKNOWN_OUTCOME = (ErrorCode.timeout, ErrorCode.unavailable)
_CHANGEABLE = ("active",)
_RECENT = 50  # an account's newest subscriptions searched for ours


def split_price(price: str) -> tuple[str, str | None]:
    """`pro-monthly:eur` -> (`pro-monthly`, `EUR`); `pro-monthly` -> (`pro-monthly`, None)."""
    code, _, currency = price.strip().partition(":")
    return code.strip(), currency.strip().upper() or None


async def read_plan(
    api: RecurlyAPI, price: str, currency: str | None = None
) -> tuple[Json, PlanPrice]:
    """The plan a price names, and its price in the currency the price (or `currency`,
    a subscription's) names; a plan with one currency needs none named."""
    code, named = split_price(price)
    plan = (
        await api.find(lambda c: c.get_plan(f"code-{code}"), f"plan {code}")
        if code and ":" not in code and "/" not in code
        else None
    )
    if plan is None:
        raise GatewayError(
            ErrorCode.not_found, f"Recurly has no plan {code or price}", gateway=NAME
        )
    if plan.get("state", "active") != "active":
        raise GatewayError(ErrorCode.invalid_state, f"plan {code} is archived", gateway=NAME)
    prices = {
        str(p["currency"]): p.get("unit_amount") or 0
        for p in plan.get("currencies") or []
        if p.get("currency")
    }
    if named and currency and named != currency:
        raise GatewayError(
            ErrorCode.currency_mismatch,
            f"{price} is in {named}: the subscription bills {currency}",
            gateway=NAME,
        )
    wanted = named or currency or (next(iter(prices)) if len(prices) == 1 else None)
    if wanted is None:
        raise GatewayError(
            ErrorCode.rejected,
            f"plan {code} has prices in {', '.join(sorted(prices))}: name one, as "
            f"{code}:{sorted(prices)[0]}",
            gateway=NAME,
        )
    if wanted not in prices:
        raise GatewayError(
            ErrorCode.currency_mismatch,
            f"plan {code} has no price in {wanted} (it has {', '.join(sorted(prices)) or 'none'})",
            gateway=NAME,
        )
    return plan, PlanPrice(
        gateway=NAME,
        id=f"{code}:{wanted}",
        name=str(plan.get("name") or code),
        amount=money_from_recurly(prices[wanted], wanted),
        interval=plan_interval(plan),
    )


async def _ours(api: RecurlyAPI, account_id: str, key: str) -> Json | None:
    """The subscription our key started on the account, if any (the newest ones read)."""
    subs = await api.items(
        lambda c: c.list_account_subscriptions(account_id, **listing(sort="created_at")),
        f"subscriptions of account {account_id}",
        _RECENT,
    )
    return next((s for s in subs if has_reference(s, key)), None)


async def create_subscription(
    api: RecurlyAPI,
    account: Json,
    price: PlanPrice,
    key: str,
    *,
    quantity: int,
    trial_days: int | None,
    coupon: str | None,
) -> Json:
    """`POST /subscriptions` on the account's saved billing info, once per key."""
    account_id = str(account["id"])
    found = await _ours(api, account_id, key)
    if found is not None:
        return found  # started already: a retry of ours
    code, currency = split_price(price.id)
    body: dict[str, Any] = {
        "plan_code": code,
        "currency": currency,
        "account": {"code": account["code"]},
        "quantity": quantity,
        "collection_method": "automatic",
        "customer_notes": reference_note("Subscription", key),
    }
    if trial_days:
        ends = datetime.now(UTC).replace(microsecond=0) + timedelta(days=trial_days)
        body["trial_ends_at"] = ends.strftime("%Y-%m-%dT%H:%M:%SZ")
    if coupon:
        body["coupon_codes"] = [coupon]
    try:
        return await api.write(
            lambda c: c.create_subscription(body),
            verb="start",
            what=f"a subscription to {code} for account {account_id}",
        )
    except GatewayError as exc:
        if exc.code not in UNKNOWN_OUTCOME:
            raise
        found = await _ours(api, account_id, key)  # the answer was lost: did it start?
        if found is None:
            raise
        return found


def _timeframe(now: bool) -> str:
    return "now" if now else "bill_date"


async def preview(
    api: RecurlyAPI, sub: Mapping[str, Any], price: str, *, now: bool, prorate: bool, at: int
) -> PlanChange:
    """Recurly's preview of moving `sub` to `price`: what the change now bills (its charge
    invoice, less its credit invoices), or nothing today for a change at the next bill date."""
    if now and not prorate:
        raise GatewayError(
            ErrorCode.rejected,
            "Recurly prorates a plan change made now itself: change it at `renewal` to bill "
            "the new plan from the next bill date without proration",
            gateway=NAME,
        )
    sub_id = str(sub["id"])
    if sub.get("state") not in _CHANGEABLE:
        raise GatewayError(
            ErrorCode.invalid_state,
            f"subscription {sub_id} is {sub.get('state')}: only an active one changes plan",
            gateway=NAME,
        )
    currency = str(sub["currency"])
    _, plan = await read_plan(api, price, currency)
    quantity = int(sub.get("quantity") or 1)
    code, _ = split_price(plan.id)
    body = {"timeframe": _timeframe(now), "plan_code": code, "quantity": quantity}
    previewed = await api.read(
        lambda c: c.preview_subscription_change(sub_id, body),
        f"the preview of {sub_id} on plan {code}",
    )
    due = 0
    collection = previewed.get("invoice_collection") or {}
    invoices = [collection.get("charge_invoice"), *(collection.get("credit_invoices") or [])]
    for invoice in invoices:
        if invoice:
            due += money_from_recurly(invoice.get("total") or 0, currency).minor
    return PlanChange(
        gateway=NAME, subscription_id=sub_id, price=plan.id, plan=plan.name, now=now,
        prorate=prorate, at=at, due_now=Money(minor=due, currency=currency),
        recurring=Money(minor=plan.amount.minor * quantity, currency=currency),
        interval=plan.interval, quantity=quantity,
    )  # fmt: skip


def is_done(sub: Mapping[str, Any], change: PlanChange) -> bool:
    """Whether the subscription already is (now) or will be (at renewal) as the change says."""
    code, _ = split_price(change.price)
    target = sub if change.now else (sub.get("pending_change") or {})
    return (target.get("plan") or {}).get("code") == code and int(
        target.get("quantity") or 0
    ) == change.quantity


async def change_plan(
    api: RecurlyAPI, sub: Mapping[str, Any], change: PlanChange, *, at: int
) -> None:
    """`POST /subscriptions/{id}/change`, once: previewed again first and refused if Recurly
    would now bill other than what was approved. The caller reads the subscription after."""
    sub_id = str(sub["id"])
    fresh = await preview(api, sub, change.price, now=change.now, prorate=change.prorate, at=at)
    if (fresh.due_now, fresh.recurring) != (change.due_now, change.recurring):
        raise GatewayError(
            ErrorCode.invalid_state,
            f"Recurly would now bill {fresh.due_now.format()} today and "
            f"{fresh.recurring.format()} each {fresh.interval}, not the "
            f"{change.due_now.format()} and {change.recurring.format()} previewed: preview "
            "the change again",
            gateway=NAME,
        )
    code, _ = split_price(change.price)
    body = {"timeframe": _timeframe(change.now), "plan_code": code, "quantity": change.quantity}
    try:
        await api.write(
            lambda c: c.create_subscription_change(sub_id, body),
            verb="change",
            what=f"the plan of {sub_id}",
        )
    except GatewayError as exc:
        if exc.code not in UNKNOWN_OUTCOME:
            raise
        again = await api.read(lambda c: c.get_subscription(sub_id), f"subscription {sub_id}")
        if not is_done(again, change):  # the answer was lost: did it change?
            raise
