"""Recurly's objects as ours, and Recurly's money rules: pure conversion, no I/O.

Recurly writes amounts as JSON numbers in major units (`100.0`, `29.99`, `500` for
JPY). The client parses them as Decimal, never float, and here they become integer
minor units with ISO 4217's digits. Recurly keeps at most two decimals: a
three-decimal currency (KWD) is charged in steps of ten fils, a zero-decimal one (JPY)
in whole units, and an amount finer than that cannot be sent.

Charges are payment transactions (`purchase`, `capture`) and `authorization` holds;
refunds are `refund` transactions naming their `original_transaction_id`. What a
payment may still give back is the smaller of what is left of it and what its
invoice may still refund (`refundable_amount`): an invoice partly refunded as account
credit has less left than its card payment. Nothing here talks to Recurly.
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
    Coupon,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Refund,
    Subscription,
    SubscriptionStatus,
)
from bot.money import Money, MoneyError, exponent, normalize_currency

NAME = "recurly"
PAYMENT_TYPES = frozenset({"purchase", "capture"})
CHARGE_TYPES = PAYMENT_TYPES | {"authorization"}
# A payment in these states has not settled (ACH, SEPA, a bank transfer): no refund yet.
UNSETTLED = frozenset({"pending", "processing", "scheduled"})
# Refunds that took the money, or will: both count against what is left.
_REFUND_COUNTS = frozenset({"success", "pending", "processing", "scheduled"})
RECURLY_MAX_DECIMALS = 2
# Recurly's object IDs (12-13 lower-case letters and digits), or `uuid-<hex>` where it takes one.
_OBJECT_ID = re.compile(r"[a-z0-9]{8,16}|uuid-[0-9a-f]{32}")
# An invoice number: digits, after a prefix of letters and hyphens if the site sets one (TEST-FR1001).
_INVOICE_NUMBER = re.compile(r"[A-Za-z-]*[0-9]+")

Json = dict[str, Any]

# --- money -------------------------------------------------------------------------------


def recurly_decimals(currency: str) -> int:
    """Decimals Recurly keeps for a currency: ISO 4217's, two at most (none for JPY)."""
    return min(exponent(currency), RECURLY_MAX_DECIMALS)


def to_decimal(value: Any) -> Decimal:
    """A number from Recurly's JSON (parsed with Decimal) as an exact Decimal; never a float."""
    if isinstance(value, bool | float):
        # A float here means the JSON went through a float parser: the digits are not Recurly's.
        raise MoneyError(f"amount {value!r} was read as a {type(value).__name__}, not exactly")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            pass
    raise MoneyError(f"{value!r} is not an amount")


def money_from_recurly(value: Any, currency: Any) -> Money:
    """A Recurly amount in major units as exact Money (credits are negative)."""
    code = normalize_currency(str(currency))
    minor = to_decimal(value).scaleb(exponent(code))
    if minor != minor.to_integral_value():
        raise MoneyError(f"{value} {code} has more decimals than {code} has")
    return Money(minor=int(minor), currency=code)


def amount_to_recurly(amount: Money) -> int | float:
    """Money as the JSON number Recurly takes, refusing what it cannot take exactly.

    The SDK writes request bodies with `json.dumps`, which takes no Decimal: two-decimal
    amounts go as floats, checked to print back as exactly our digits (true of any
    amount under 15 significant digits; ours have at most 12).
    """
    digits = recurly_decimals(amount.currency)
    value = amount.decimal
    if value != value.quantize(Decimal(1).scaleb(-digits)):
        unit = "whole units" if digits == 0 else f"at most {digits} decimals"
        raise GatewayError(
            ErrorCode.rejected,
            f"Recurly takes {amount.currency} in {unit}: {amount.format()} cannot be sent",
            gateway=NAME,
        )
    if digits == 0:
        return int(value)
    number = float(value)
    if Decimal(repr(number)) != value:
        raise GatewayError(
            ErrorCode.rejected, f"{amount.format()} cannot be sent exactly", gateway=NAME
        )
    return number


# --- small pieces ------------------------------------------------------------------------


def is_object_id(text: str) -> bool:
    """Could this be a Recurly object ID (or `uuid-...`)? Stripe's `ch_...` could not."""
    return bool(_OBJECT_ID.fullmatch(text))


def is_invoice_number(text: str) -> bool:
    return bool(_INVOICE_NUMBER.fullmatch(text))


def recurly_time(text: Any) -> datetime | None:
    """A Recurly date-time (ISO 8601, UTC) as an aware datetime; None when absent."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def mini_id(value: Any) -> str | None:
    """The `id` of an embedded object (`account`, `invoice`), if any."""
    return str(value["id"]) if isinstance(value, dict) and value.get("id") else None


def account_name(account: Mapping[str, Any]) -> str | None:
    parts = [account.get("first_name"), account.get("last_name")]
    name = " ".join(str(p) for p in parts if p)
    return name or account.get("company") or None


def refund_reference(idempotency_key: str) -> str:
    """The short, stable reference of one of our refunds, from its idempotency key."""
    return "cd-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]


def refund_note(idempotency_key: str) -> str:
    """The credit invoice's customer notes for our refund: they carry its reference.

    Recurly has no idempotency key and no metadata on refunds; its credit invoice's
    notes are what a retry can find the earlier refund by. The customer sees them, so
    they hold a reference only, never the agent's reason.
    """
    return reference_note("Refund", idempotency_key)


def reference_note(what: str, idempotency_key: str) -> str:
    """Customer notes carrying our reference (`Charge reference cd-…`): on what we create at
    Recurly (a purchase's invoice, a subscription), a retry finds its earlier result by them."""
    return f"{what} reference {refund_reference(idempotency_key)}"


def has_reference(obj: Mapping[str, Any], idempotency_key: str) -> bool:
    """Whether a Recurly invoice or subscription carries our reference in its notes."""
    return refund_reference(idempotency_key) in str(obj.get("customer_notes") or "")


def is_our_refund(credit_invoice: Mapping[str, Any], idempotency_key: str) -> bool:
    return has_reference(credit_invoice, idempotency_key)


def refunds_in(credit_invoice: Mapping[str, Any], charge_id: str) -> list[Json]:
    """The refund transactions of a credit invoice that gave money back to `charge_id`."""
    return [
        t
        for t in credit_invoice.get("transactions") or []
        if t.get("type") == "refund" and t.get("original_transaction_id") == charge_id
    ]


# --- accounts ------------------------------------------------------------------------------


def parse_customer(account: Mapping[str, Any]) -> Customer:
    """A Recurly account as our customer."""
    address = account.get("address") or {}
    locale = account.get("preferred_locale")
    return Customer(
        gateway=NAME,
        id=str(account["id"]),
        email=account.get("email"),
        name=account_name(account),
        created=recurly_time(account.get("created_at")),
        address=Address(
            line1=address.get("street1"),
            line2=address.get("street2"),
            postal_code=address.get("postal_code"),
            city=address.get("city"),
            state=address.get("region"),
            country=address.get("country"),
        )
        if address
        else None,
        locale=str(locale).replace("-", "_") if locale else None,
        tax_exempt=bool(account.get("tax_exempt")),
    )


# --- transactions ------------------------------------------------------------------------


def refunds_by_charge(transactions: Iterable[Mapping[str, Any]]) -> dict[str, list[Json]]:
    """Refund transactions grouped by the payment each gave money back to."""
    found: dict[str, list[Json]] = {}
    for txn in transactions:
        original = txn.get("original_transaction_id")
        if txn.get("type") == "refund" and original:
            found.setdefault(str(original), []).append(dict(txn))
    return found


def refunded_total(refunds: Iterable[Mapping[str, Any]], currency: str) -> int:
    return sum(
        money_from_recurly(r["amount"], r.get("currency") or currency).minor
        for r in refunds
        if r.get("status") in _REFUND_COUNTS
    )


def parse_charge(
    txn: Mapping[str, Any],
    refunds: Iterable[Mapping[str, Any]] = (),
    invoice: Mapping[str, Any] | None = None,
) -> Charge:
    """A payment (or an authorization hold) with its refunds and, if known, its invoice."""
    currency = str(txn["currency"])
    amount = money_from_recurly(txn["amount"], currency)
    kind, status_text = txn.get("type"), str(txn.get("status"))
    invoice_id = mini_id(txn.get("invoice"))
    number = (txn.get("invoice") or {}).get("number")
    description = f"invoice {number}" if number else None
    captured = refunded = 0
    failure = None
    if kind == "authorization":
        status = {
            "void": ChargeStatus.voided,
            "declined": ChargeStatus.failed,
            "error": ChargeStatus.failed,
        }.get(status_text, ChargeStatus.authorized)
        description = "authorization hold"
    elif status_text in ("success", "chargeback"):
        captured = amount.minor
        left = captured - refunded_total(refunds, currency)
        if invoice is not None and invoice.get("refundable_amount") is not None:
            invoice_left = money_from_recurly(invoice["refundable_amount"], currency).minor
            if invoice_left < left:
                # Part of the invoice went back as account credit, or to another payment.
                description = f"{description or 'its invoice'}: partly refunded otherwise"
            left = min(left, invoice_left)
        refunded = min(max(captured - left, 0), captured)
        if status_text == "chargeback":
            status = ChargeStatus.disputed
        elif refunded >= captured:
            status = ChargeStatus.refunded
        elif refunded:
            status = ChargeStatus.partially_refunded
        else:
            status = ChargeStatus.succeeded
    elif status_text in UNSETTLED:
        # Money on its way (ACH, SEPA): shown as paid, nothing to refund until it settles.
        status = ChargeStatus.succeeded
        description = f"not settled yet ({status_text} at Recurly)"
    elif status_text == "void":
        status = ChargeStatus.voided
    else:
        status = ChargeStatus.failed
        failure = txn.get("status_message") or txn.get("customer_message") or status_text
    return Charge(
        gateway=NAME,
        id=str(txn["id"]),
        customer_id=mini_id(txn.get("account")),
        amount=amount,
        amount_captured=captured,
        amount_refunded=refunded,
        status=status,
        description=description,
        invoice_id=invoice_id,
        created=recurly_time(txn.get("created_at")),
        failure_message=failure,
    )


def is_unsettled(txn: Mapping[str, Any]) -> bool:
    return txn.get("type") in PAYMENT_TYPES and txn.get("status") in UNSETTLED


def parse_refund(txn: Mapping[str, Any], reason: str | None = None) -> Refund:
    """A refund transaction as our refund of its original payment."""
    status = str(txn.get("status"))
    return Refund(
        gateway=NAME,
        id=str(txn["id"]),
        charge_id=str(txn.get("original_transaction_id") or ""),
        amount=money_from_recurly(txn["amount"], txn["currency"]),
        status={"success": "succeeded", "void": "canceled"}.get(
            status, "pending" if status in UNSETTLED else "failed"
        ),
        reason=reason,
        created=recurly_time(txn.get("created_at")),
    )


# --- invoices ----------------------------------------------------------------------------

_INVOICE_STATUS = {
    "pending": InvoiceStatus.open,
    "processing": InvoiceStatus.open,
    "past_due": InvoiceStatus.open,
    "open": InvoiceStatus.open,
    "paid": InvoiceStatus.paid,
    "closed": InvoiceStatus.paid,
    "failed": InvoiceStatus.uncollectible,
    "voided": InvoiceStatus.void,
}


def _line(item: Mapping[str, Any], currency: str) -> InvoiceLine:
    code = item.get("currency") or currency
    subtotal = item.get("subtotal")
    if subtotal is None:
        total = money_from_recurly(item.get("amount") or 0, code)
    else:
        total = (
            money_from_recurly(subtotal, code)
            - money_from_recurly(item.get("discount") or 0, code)
            + money_from_recurly(item.get("tax") or 0, code)
        )
    return InvoiceLine(
        description=str(item.get("description") or item.get("plan_code") or "line item"),
        quantity=int(item.get("quantity") or 1),
        amount=total,
    )


def parse_invoice(invoice: Mapping[str, Any]) -> Invoice:
    """A Recurly charge invoice as ours (the lines only when Recurly sent them all)."""
    currency = str(invoice["currency"])
    total = money_from_recurly(invoice.get("total") or 0, currency)
    balance = money_from_recurly(invoice.get("balance") or 0, currency)
    state = str(invoice.get("state"))
    payments = [
        t
        for t in invoice.get("transactions") or []
        if t.get("type") in PAYMENT_TYPES and t.get("status") == "success"
    ]
    lines: tuple[InvoiceLine, ...] = ()
    if not invoice.get("has_more_line_items"):
        lines = tuple(_line(i, currency) for i in invoice.get("line_items") or [])
    return Invoice(
        gateway=NAME,
        id=str(invoice["id"]),
        customer_id=mini_id(invoice.get("account")) or "",
        number=invoice.get("number"),
        status=_INVOICE_STATUS.get(state, InvoiceStatus.open),
        amount_due=total,
        amount_paid=total - balance,
        due_date=recurly_time(invoice.get("due_at")),
        created=recurly_time(invoice.get("created_at")),
        charge_id=str(payments[0]["id"]) if payments else None,
        lines=lines,
        paid_at=recurly_time(invoice.get("closed_at")) if state in ("paid", "closed") else None,
    )


# --- subscriptions -----------------------------------------------------------------------

_SUBSCRIPTION_STATUS = {
    "active": SubscriptionStatus.active,
    # Canceled at Recurly runs until `expires_at`: still active, ending at period end.
    "canceled": SubscriptionStatus.active,
    "expired": SubscriptionStatus.canceled,
    "failed": SubscriptionStatus.unpaid,
    "paused": SubscriptionStatus.unpaid,
    "future": SubscriptionStatus.incomplete,
}


def plan_interval(plan: Mapping[str, Any] | None) -> str:
    """A plan's billing interval in words: `month`, `year`, `3 months`, `week`."""
    if not plan:
        return "month"
    length = int(plan.get("interval_length") or 1)
    if plan.get("interval_unit") == "days":
        if length % 7 == 0:
            weeks = length // 7
            return "week" if weeks == 1 else f"{weeks} weeks"
        return "day" if length == 1 else f"{length} days"
    if length % 12 == 0:
        years = length // 12
        return "year" if years == 1 else f"{years} years"
    return "month" if length == 1 else f"{length} months"


def parse_subscription(
    sub: Mapping[str, Any], plan: Mapping[str, Any] | None = None
) -> Subscription:
    """A Recurly subscription as ours; `plan` (read separately) gives its interval."""
    currency = str(sub["currency"])
    state = str(sub.get("state"))
    if sub.get("subtotal") is not None:
        price = money_from_recurly(sub["subtotal"], currency)
    else:
        unit = money_from_recurly(sub.get("unit_amount") or 0, currency)
        price = Money(minor=unit.minor * int(sub.get("quantity") or 1), currency=unit.currency)
    status = _SUBSCRIPTION_STATUS.get(state, SubscriptionStatus.incomplete)
    trial_ends = sub.get("trial_ends_at")
    if state == "active" and trial_ends and trial_ends == sub.get("current_period_ends_at"):
        status = SubscriptionStatus.trialing
    ending = state == "canceled"
    period_end = recurly_time(sub.get("expires_at")) if ending else None
    mini = sub.get("plan") or {}
    return Subscription(
        gateway=NAME,
        id=str(sub["id"]),
        customer_id=mini_id(sub.get("account")) or "",
        plan=str(mini.get("name") or mini.get("code") or "unknown plan"),
        status=status,
        amount=price,
        interval=plan_interval(plan),
        current_period_end=period_end or recurly_time(sub.get("current_period_ends_at")),
        cancel_at_period_end=ending,
        canceled_at=recurly_time(sub.get("canceled_at") or sub.get("expires_at"))
        if state in ("canceled", "expired")
        else None,
        # Paused, or to pause at the next renewal (`paused_at`): payments stop either way.
        paused=state == "paused" or bool(sub.get("paused_at")),
        quantity=int(sub.get("quantity") or 1),
        trial_end=recurly_time(trial_ends),
    )


# --- coupons -----------------------------------------------------------------------------


def describe_coupon(coupon: Mapping[str, Any], currency: str | None = None) -> str:
    """`WELCOME10: 10% off, forever`, `SPRING: $5.00 off, for 3 months`."""
    label = coupon.get("code") or coupon.get("name") or coupon.get("id") or "coupon"
    discount = coupon.get("discount") or {}
    kind = discount.get("type")
    if kind == "percent" and discount.get("percent") is not None:
        off = f"{discount['percent']}% off"
    elif kind == "fixed":
        prices = {p.get("currency"): p.get("amount") for p in discount.get("currencies") or []}
        chosen = currency if currency in prices else next(iter(prices), None)
        off = (
            f"{money_from_recurly(prices[chosen], chosen).format()} off"
            if chosen is not None
            else "discount"
        )
    elif kind == "free_trial":
        trial = discount.get("trial") or {}
        length, unit = trial.get("length") or 1, trial.get("unit") or "month"
        off = f"{length} {unit}{'s' if length != 1 else ''} free"
    else:
        off = "discount"
    duration = coupon.get("duration")
    if duration == "temporal":
        count, unit = coupon.get("temporal_amount") or 0, coupon.get("temporal_unit") or "month"
        when = f"for {count} {unit}{'s' if count != 1 else ''}"
    elif duration == "single_use":
        when = "once"
    else:
        when = str(duration or "forever")
    return f"{label}: {off}, {when}"


def coupon_of(raw: Mapping[str, Any], currency: str | None = None) -> Coupon:
    """A Recurly coupon as ours: a fixed amount in `currency` if it has one there, else in
    its first currency; a free trial is neither a percentage nor an amount off."""
    discount = raw.get("discount") or {}
    prices = {p.get("currency"): p.get("amount") for p in discount.get("currencies") or []}
    chosen = currency if currency in prices else next(iter(prices), None)
    percent = discount.get("percent") if discount.get("type") == "percent" else None
    unit, count = raw.get("temporal_unit"), raw.get("temporal_amount") or 0
    months = {"month": count, "year": 12 * count}.get(str(unit)) if count else None
    return Coupon(
        gateway=NAME,
        code=str(raw.get("code") or raw.get("id")),
        name=raw.get("name"),
        percent_off=Decimal(str(percent)) if percent is not None else None,
        amount_off=(
            money_from_recurly(prices[chosen], chosen)
            if discount.get("type") == "fixed" and chosen is not None
            else None
        ),
        duration={"temporal": "repeating", "forever": "forever"}.get(
            str(raw.get("duration")), "once"
        ),
        duration_in_months=months,
    )


def fixed_currencies(coupon: Mapping[str, Any]) -> list[str]:
    """The currencies a fixed-amount coupon has an amount in (none for a percentage)."""
    discount = coupon.get("discount") or {}
    if discount.get("type") != "fixed":
        return []
    return [str(p["currency"]) for p in discount.get("currencies") or [] if p.get("currency")]
