"""WooCommerce's objects as ours, and its money rules: pure conversion, no I/O.

- Amounts are decimal strings with the store's "Number of decimals" (two unless changed),
  read exactly into ISO 4217 minor units and sent back with the currency's ISO digits;
  a store writing more decimals than the currency has is refused, never rounded.
- A charge is an order. Its ID is the order ID; the order number, which a plugin may make
  different, is in the description. An order counts as paid once WooCommerce set
  `date_paid`; until then it is `authorized` (awaiting payment or capture), or `voided`
  / `failed` when cancelled or failed.
- A customer is a WordPress user (`customer-42`), or, for guest orders, the billing e-mail.
- Dates are read from the `_gmt` fields: the others are in the store's timezone.
- Our refunds carry a reference made from the request's key: in `meta_data` (the key
  itself) and in the refund's reason (`Refund ref <marker>`), which WooCommerce saves with
  the refund in one go, whereas the meta data is saved after it. The reason is shown to the
  customer in their order, so it says nothing else; the agent's reason goes in a private
  order note.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.gateways.base import ErrorCode, GatewayError
from bot.models import (
    Address,
    Charge,
    ChargeStatus,
    Customer,
    Refund,
    Subscription,
    SubscriptionStatus,
)
from bot.money import Money, MoneyError, exponent, normalize_currency

NAME = "woocommerce"
Json = dict[str, Any]
CUSTOMER_PREFIX = "customer-"
# The refund meta data key holding the request's idempotency key.
REQUEST_META_KEY = "chargedesk_request"
_SAFE_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}")
_MARKER = re.compile(r"\bref ([A-Za-z0-9_-]{1,40})\b")
# Statuses WooCommerce lists but no customer ever paid through.
HIDDEN_STATUSES = frozenset({"trash", "checkout-draft", "auto-draft"})

# --- money ---------------------------------------------------------------------------------


def money(value: Any, currency: str) -> Money:
    """A WooCommerce amount (`"29.35"`, `"500"`, `"-10.00"` read as its size) as exact Money."""
    code = normalize_currency(currency)
    try:
        amount = abs(Decimal(str(value if value not in (None, "") else "0").strip()))
    except InvalidOperation:
        raise MoneyError(f"{value!r} is not an amount") from None
    minor = amount.scaleb(exponent(code))
    if minor != minor.to_integral_value():
        raise MoneyError(f"{value} {code} has more decimals than {code} has")
    return Money(minor=int(minor), currency=code)


def amount_text(amount: Money) -> str:
    """Money as WooCommerce takes it: a decimal string with the currency's ISO digits."""
    return f"{amount.decimal:.{exponent(amount.currency)}f}"


# --- references ----------------------------------------------------------------------------


def customer_ref(user_id: int) -> str:
    return f"{CUSTOMER_PREFIX}{user_id}"


def user_id_of(customer_id: str) -> int | None:
    """The WordPress user ID in `customer-42`, None for anything else."""
    rest = customer_id.removeprefix(CUSTOMER_PREFIX)
    if rest == customer_id or not rest.isascii() or not rest.isdigit():
        return None
    return int(rest)


def order_id_of(object_id: str) -> int | None:
    """The numeric post ID an order, refund or subscription ID is, None for anything else."""
    text = object_id.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def billing_email(obj: Mapping[str, Any]) -> str | None:
    email = str((obj.get("billing") or {}).get("email") or "").strip().lower()
    return email or None


def owner_of(obj: Mapping[str, Any]) -> str | None:
    """Who an order belongs to: `customer-N` for an account, the billing e-mail for a guest."""
    user = obj.get("customer_id")
    if isinstance(user, int) and user > 0:
        return customer_ref(user)
    return billing_email(obj)


def refund_marker(key: str) -> str:
    """The request's key as it may be shown to a customer: itself if plain, else a hash."""
    if _SAFE_KEY.fullmatch(key):
        return key
    return "cd-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def refund_reason(key: str) -> str:
    """The reason WooCommerce saves and shows the customer: a reference, nothing internal."""
    return f"Refund ref {refund_marker(key)}"


def marker_in(reason: str | None) -> str | None:
    found = _MARKER.search(reason or "")
    return found.group(1) if found else None


def is_ours(refund: Mapping[str, Any], key: str) -> bool:
    """Whether a refund (as listed by WooCommerce) was made by the request with this key."""
    for meta in refund.get("meta_data") or []:
        if isinstance(meta, dict) and (meta.get("key"), meta.get("value")) == (
            REQUEST_META_KEY,
            key,
        ):
            return True
    return marker_in(refund.get("reason")) == refund_marker(key)


# --- dates ---------------------------------------------------------------------------------


def wc_time(value: Any) -> datetime | None:
    """A `_gmt` date (`2017-03-22T19:28:02`, no offset: it is UTC) as an aware datetime."""
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- customers -----------------------------------------------------------------------------


def _address(billing: Mapping[str, Any] | None) -> Address | None:
    if not billing:
        return None
    address = Address(
        line1=billing.get("address_1") or None,
        line2=billing.get("address_2") or None,
        postal_code=billing.get("postcode") or None,
        city=billing.get("city") or None,
        state=billing.get("state") or None,
        country=(billing.get("country") or None),
    )
    return address if any(address.model_dump().values()) else None


def _name(first: Any, last: Any, company: Any = None) -> str | None:
    name = " ".join(str(p).strip() for p in (first, last) if p and str(p).strip())
    return name or (str(company).strip() if company else None) or None


def parse_customer(customer: Mapping[str, Any]) -> Customer:
    """A registered customer (a WordPress user)."""
    billing = customer.get("billing") or {}
    return Customer(
        gateway=NAME,
        id=customer_ref(int(customer["id"])),
        email=(str(customer.get("email") or "").lower() or billing_email(customer)),
        name=_name(customer.get("first_name"), customer.get("last_name"))
        or _name(billing.get("first_name"), billing.get("last_name"), billing.get("company")),
        created=wc_time(customer.get("date_created_gmt")),
        address=_address(billing),
    )


def customer_from_orders(customer_id: str, orders: Iterable[Mapping[str, Any]]) -> Customer:
    """A customer known only from their orders (a guest, or a deleted account): the latest
    order's billing details."""
    latest = max(orders, key=lambda o: wc_time(o.get("date_created_gmt")) or datetime.min.replace(tzinfo=UTC), default=None)  # fmt: skip
    billing = (latest or {}).get("billing") or {}
    return Customer(
        gateway=NAME,
        id=customer_id,
        email=billing_email(latest or {}) or (customer_id if "@" in customer_id else None),
        name=_name(billing.get("first_name"), billing.get("last_name"), billing.get("company")),
        address=_address(billing),
    )


# --- orders --------------------------------------------------------------------------------


def order_refunded(order: Mapping[str, Any], currency: str) -> Money:
    """What has been refunded of an order: the sum of its refunds."""
    total = sum((money(r.get("total"), currency).minor for r in order.get("refunds") or []), 0)
    return Money(minor=total, currency=currency)


def is_paid(order: Mapping[str, Any]) -> bool:
    return bool(order.get("date_paid_gmt")) or order.get("status") in ("processing", "completed", "refunded")  # fmt: skip


def _items(order: Mapping[str, Any]) -> str:
    names = [str(i.get("name") or "").strip() for i in order.get("line_items") or []]
    names = [n for n in names if n]
    if not names:
        return ""
    shown = ", ".join(names[:2])
    return shown + (f" and {len(names) - 2} more" if len(names) > 2 else "")


def parse_order(order: Mapping[str, Any]) -> Charge:
    """An order as a charge."""
    currency = str(order.get("currency") or "")
    total = money(order.get("total"), currency)
    refunded = order_refunded(order, currency)
    paid = is_paid(order)
    status = str(order.get("status") or "")
    if not paid:
        charge_status = {"cancelled": ChargeStatus.voided, "failed": ChargeStatus.failed}.get(
            status, ChargeStatus.authorized
        )
    elif status == "refunded" or (refunded.minor >= total.minor > 0):
        charge_status = ChargeStatus.refunded
    elif refunded.minor > 0:
        charge_status = ChargeStatus.partially_refunded
    else:
        charge_status = ChargeStatus.succeeded
    method = str(order.get("payment_method_title") or order.get("payment_method") or "").strip()
    description = f"Order #{order.get('number') or order.get('id')}"
    items = _items(order)
    if items:
        description += f": {items}"
    if method:
        description += f" ({method})"
    return Charge(
        gateway=NAME,
        id=str(order["id"]),
        customer_id=owner_of(order),
        amount=total,
        amount_captured=total.minor if paid else 0,
        amount_refunded=refunded.minor,
        status=charge_status,
        description=description,
        created=wc_time(order.get("date_created_gmt")),
        failure_message="the order's payment failed" if status == "failed" else None,
    )


def order_refunds(order: Mapping[str, Any]) -> list[Refund]:
    """The refunds an order lists (ID, reason, total), as ours."""
    currency = str(order.get("currency") or "")
    return [
        Refund(
            gateway=NAME,
            id=str(r["id"]),
            charge_id=str(order["id"]),
            amount=money(r.get("total"), currency),
            reason=r.get("reason") or None,
        )
        for r in order.get("refunds") or []
    ]


def parse_refund(refund: Mapping[str, Any], order_id: str, currency: str) -> Refund:
    """A refund as `orders/<id>/refunds` gives it."""
    return Refund(
        gateway=NAME,
        id=str(refund["id"]),
        charge_id=order_id,
        amount=money(refund.get("amount"), currency),
        reason=refund.get("reason") or None,
        created=wc_time(refund.get("date_created_gmt")),
    )


# --- subscriptions (WooCommerce Subscriptions) ----------------------------------------------

_SUBSCRIPTION_STATUS = {
    "active": SubscriptionStatus.active,
    "pending-cancel": SubscriptionStatus.active,  # paid up to its end date, then cancelled
    "on-hold": SubscriptionStatus.past_due,  # a renewal failed or awaits manual payment
    "pending": SubscriptionStatus.incomplete,
    "cancelled": SubscriptionStatus.canceled,
    "expired": SubscriptionStatus.canceled,
    "switched": SubscriptionStatus.canceled,
    "trash": SubscriptionStatus.canceled,
}


def _interval(subscription: Mapping[str, Any]) -> str:
    period = str(subscription.get("billing_period") or "month")
    try:
        count = int(str(subscription.get("billing_interval") or "1"))
    except ValueError:
        count = 1
    return period if count == 1 else f"{count} {period}s"


def parse_subscription(
    subscription: Mapping[str, Any], now: datetime | None = None
) -> Subscription:
    status = str(subscription.get("status") or "")
    ours = _SUBSCRIPTION_STATUS.get(status)
    if ours is None:
        raise GatewayError(
            ErrorCode.invalid_state,
            f"subscription {subscription.get('id')} has a status ChargeDesk does not know: {status}",
            gateway=NAME,
            raw_code=status,
        )
    trial_end = wc_time(subscription.get("trial_end_date_gmt"))
    if ours == SubscriptionStatus.active and trial_end and trial_end > (now or datetime.now(UTC)):
        ours = SubscriptionStatus.trialing
    end = wc_time(subscription.get("end_date_gmt"))
    names = [str(i.get("name") or "") for i in subscription.get("line_items") or []]
    plan = ", ".join(n for n in names if n) or f"Subscription #{subscription.get('id')}"
    return Subscription(
        gateway=NAME,
        id=str(subscription["id"]),
        customer_id=customer_ref(int(subscription.get("customer_id") or 0)),
        plan=plan,
        status=ours,
        amount=money(subscription.get("total"), str(subscription.get("currency") or "")),
        interval=_interval(subscription),
        current_period_end=wc_time(subscription.get("next_payment_date_gmt")) or end,
        cancel_at_period_end=status == "pending-cancel",
        # Suspended by the shop, or after a failed renewal: no payments are taken until active.
        paused=status == "on-hold",
        canceled_at=(wc_time(subscription.get("cancelled_date_gmt")) or end)
        if ours == SubscriptionStatus.canceled
        else None,
    )
