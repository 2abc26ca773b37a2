"""Braintree's objects in our words: pure, no I/O and no SDK import.

The SDK hands back resource objects (`Transaction`, `Customer`, `Subscription`,
`Dispute`, ...) whose fields are plain attributes parsed from Braintree's XML;
they are read here by name, so this module never imports the SDK. Fields a
webhook's snapshot leaves out read as None.

Currency facts: Braintree amounts are decimal strings in the currency's ISO 4217
minor unit (no decimal point for JPY and the other zero-decimal currencies); a
subscription carries no currency of its own: its merchant account's is used.
Refunds are transactions of type `credit` pointing at their sale by
`refunded_transaction_id`; a sale lists them in `refund_ids`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.gateways.base import ErrorCode
from bot.models import (
    Address,
    Charge,
    ChargeStatus,
    Customer,
    Dispute,
    DisputeStatus,
    Refund,
    Subscription,
    SubscriptionStatus,
)
from bot.money import Money, MoneyError, exponent, normalize_currency

NAME = "braintree"
# Braintree's order ID holds up to 255 characters; ours is the idempotency key behind this prefix.
ORDER_PREFIX = "chargedesk:"
_HASHED = "sha256:"
ORDER_ID_MAX = 255

# Transaction statuses, grouped by what they mean for money.
AUTHORIZED = frozenset({"authorized", "authorizing"})
# Captured, not yet settled: only a void (of the whole amount) can give the money back.
UNSETTLED = frozenset({"submitted_for_settlement", "settlement_pending"})
SETTLING = "settling"
SETTLED = frozenset({"settled", "settlement_confirmed"})
CAPTURED = UNSETTLED | SETTLED | {SETTLING}
VOIDED = frozenset({"voided", "authorization_expired"})
FAILED = frozenset(
    {
        "failed",
        "gateway_rejected",
        "processor_declined",
        "settlement_declined",
        "settlement_failed",
    }
)
# A refund (credit) in these states gave nothing back.
_DEAD_REFUND = VOIDED | FAILED
# A dispute in these states no longer holds the money.
_SETTLED_DISPUTES = frozenset({"won"})

_DISPUTE_STATUS = {
    "open": DisputeStatus.needs_response,
    "disputed": DisputeStatus.under_review,
    "under_review": DisputeStatus.under_review,
    "won": DisputeStatus.won,
    "lost": DisputeStatus.lost,
    "accepted": DisputeStatus.lost,
    "auto_accepted": DisputeStatus.lost,
    "expired": DisputeStatus.lost,
}
_SUBSCRIPTION_STATUS = {
    "Active": SubscriptionStatus.active,
    "Past Due": SubscriptionStatus.past_due,
    "Canceled": SubscriptionStatus.canceled,
    "Expired": SubscriptionStatus.canceled,
}


def field(obj: Any, name: str) -> Any:
    """An SDK object's attribute, None where Braintree's XML left it out."""
    return getattr(obj, name, None)


# --- money ---------------------------------------------------------------------------------


def money_from_braintree(value: Any, currency: str) -> Money:
    """A Braintree amount (decimal string or Decimal) in `currency` as exact Money."""
    code = normalize_currency(str(currency))
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise MoneyError(f"{value!r} is not a Braintree amount") from None
    minor = amount.scaleb(exponent(code))
    if minor != minor.to_integral_value():
        raise MoneyError(f"{value} {code} has more decimals than {code} has")
    return Money(minor=int(minor), currency=code)


def money_to_braintree(amount: Money) -> str:
    """Money as the decimal string Braintree takes: the currency's ISO digits, no more."""
    digits = exponent(amount.currency)
    return f"{amount.decimal:.{digits}f}"


# --- our key on a refund -------------------------------------------------------------------


def order_marker(key: str) -> str:
    """The order ID a refund of ours carries: the idempotency key, or its hash if it cannot fit.

    Braintree copies the sale's order ID to a refund that names none, so the prefix
    keeps a merchant's own order ID from ever reading as one of ours.
    """
    plain = ORDER_PREFIX + key
    fits = len(plain) <= ORDER_ID_MAX and key.isascii() and key.isprintable()
    if fits and not key.startswith(_HASHED):
        return plain
    return ORDER_PREFIX + _HASHED + hashlib.sha256(key.encode()).hexdigest()


def key_of_order(order_id: str | None) -> str | None:
    """The idempotency key an order ID of ours carries (None for hashed or foreign ones)."""
    if not order_id or not order_id.startswith(ORDER_PREFIX):
        return None
    key = order_id.removeprefix(ORDER_PREFIX)
    return None if key.startswith(_HASHED) else key


# --- times ---------------------------------------------------------------------------------


def as_utc(moment: Any) -> datetime | None:
    """The SDK's naive-UTC datetimes (and dates, as midnight) as aware UTC datetimes."""
    if isinstance(moment, datetime):
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if isinstance(moment, date):
        return datetime.combine(moment, time.min, tzinfo=UTC)
    return None


# --- customers -----------------------------------------------------------------------------


def person_name(obj: Any) -> str | None:
    """First and last name, else the company."""
    name = " ".join(p for p in (field(obj, "first_name"), field(obj, "last_name")) if p)
    return name or field(obj, "company") or None


def parse_address(address: Any) -> Address | None:
    if address is None:
        return None
    return Address(
        line1=field(address, "street_address") or None,
        line2=field(address, "extended_address") or None,
        postal_code=field(address, "postal_code") or None,
        city=field(address, "locality") or None,
        state=field(address, "region") or None,
        country=field(address, "country_code_alpha2") or None,
    )


def parse_customer(customer: Any) -> Customer:
    addresses = field(customer, "addresses") or []
    return Customer(
        gateway=NAME,
        id=str(customer.id),
        email=field(customer, "email") or None,
        name=person_name(customer),
        created=as_utc(field(customer, "created_at")),
        address=parse_address(addresses[0]) if addresses else None,
    )


def guest_customer(email: str, details: Any | None) -> Customer:
    """Someone who paid without a stored Braintree customer: known by e-mail alone."""
    return Customer(
        gateway=NAME,
        id=email.lower(),
        email=email.lower(),
        name=person_name(details) if details is not None else None,
    )


def customer_id_of(transaction: Any) -> str | None:
    """The stored customer a transaction belongs to, else the guest's e-mail (lowercased)."""
    details = field(transaction, "customer_details")
    if details is None:
        return None
    if field(details, "id"):
        return str(details.id)
    email = field(details, "email")
    return email.lower() if email else None


# --- transactions --------------------------------------------------------------------------


def is_refund(transaction: Any) -> bool:
    return field(transaction, "type") == "credit"


def live_refunds(refunds: Iterable[Any]) -> list[Any]:
    """Refunds that gave (or are giving) money back: not voided, not failed."""
    return [r for r in refunds if field(r, "status") not in _DEAD_REFUND]


def refunded_minor(refunds: Iterable[Any], currency: str) -> int:
    return sum(money_from_braintree(r.amount, currency).minor for r in live_refunds(refunds))


def open_dispute(transaction: Any) -> bool:
    disputes = field(transaction, "disputes") or []
    return any(field(d, "status") not in _SETTLED_DISPUTES for d in disputes)


def parse_transaction(transaction: Any, refunds: Iterable[Any]) -> Charge:
    """A sale (with its refunds, as transactions) as our Charge."""
    currency = str(transaction.currency_iso_code)
    amount = money_from_braintree(transaction.amount, currency)
    status = str(field(transaction, "status") or "")
    refunded = refunded_minor(refunds, currency)
    captured = amount.minor if status in CAPTURED else 0
    failure = None
    if status in AUTHORIZED:
        ours = ChargeStatus.authorized
    elif status in CAPTURED:
        if open_dispute(transaction):
            ours = ChargeStatus.disputed
        elif refunded >= amount.minor:
            ours = ChargeStatus.refunded
        elif refunded:
            ours = ChargeStatus.partially_refunded
        else:
            ours = ChargeStatus.succeeded
    elif status in VOIDED:
        ours = ChargeStatus.voided
    else:
        ours = ChargeStatus.failed
        failure = (
            field(transaction, "processor_response_text")
            or field(transaction, "gateway_rejection_reason")
            or status.replace("_", " ")
        )
    return Charge(
        gateway=NAME,
        id=str(transaction.id),
        customer_id=customer_id_of(transaction),
        amount=amount,
        amount_captured=captured,
        amount_refunded=refunded,
        status=ours,
        description=describe(transaction),
        created=as_utc(field(transaction, "created_at")),
        failure_message=failure,
    )


def describe(transaction: Any) -> str | None:
    """What a receipt calls the payment: its subscription's plan, else its order ID."""
    subscription_id = field(transaction, "subscription_id")
    if subscription_id:
        plan = field(transaction, "plan_id")
        return f"Subscription {subscription_id}" + (f" ({plan})" if plan else "")
    order_id = field(transaction, "order_id")
    if order_id and not order_id.startswith(ORDER_PREFIX):
        return f"Order {order_id}"
    return None


def refund_status(credit: Any) -> str:
    status = field(credit, "status")
    if status in VOIDED:
        return "canceled"
    if status in FAILED:
        return "failed"
    return "succeeded"


def parse_refund(credit: Any, reason: str | None = None) -> Refund:
    """A refund (a credit transaction) as our Refund."""
    return Refund(
        gateway=NAME,
        id=str(credit.id),
        charge_id=str(field(credit, "refunded_transaction_id") or ""),
        amount=money_from_braintree(credit.amount, str(credit.currency_iso_code)),
        status=refund_status(credit),
        reason=reason,
        created=as_utc(field(credit, "created_at")),
    )


def voided_instead(transaction: Any, reason: str) -> Refund:
    """What a refund of an unsettled sale became: the whole sale voided."""
    return Refund(
        gateway=NAME,
        id=str(transaction.id),
        charge_id=str(transaction.id),
        amount=money_from_braintree(transaction.amount, str(transaction.currency_iso_code)),
        status="voided",
        reason=f"{reason} (voided instead of refunded: it had not settled at Braintree)",
        created=as_utc(field(transaction, "updated_at")),
    )


def last_change(history: Iterable[Any] | None, status: str) -> Any | None:
    """The newest status event that moved an object to `status`, if its history says."""
    events = [e for e in history or [] if field(e, "status") == status]
    return max(
        events,
        key=lambda e: as_utc(field(e, "timestamp")) or datetime.min.replace(tzinfo=UTC),
        default=None,
    )


def changed_through_api(history: Iterable[Any] | None, status: str, source: str) -> bool:
    """Whether the last move to `status` came through the API (not the Control Panel)."""
    event = last_change(history, status)
    return event is not None and field(event, source) == "api"


# --- disputes ------------------------------------------------------------------------------


def parse_dispute(dispute: Any, charge_id: str | None = None) -> Dispute:
    details = field(dispute, "transaction_details") or field(dispute, "transaction")
    currency = str(dispute.currency_iso_code)
    amount = field(dispute, "amount_disputed")
    if amount is None:
        amount = dispute.amount
    return Dispute(
        gateway=NAME,
        id=str(dispute.id),
        charge_id=str(charge_id or field(details, "id") or ""),
        amount=money_from_braintree(amount, currency),
        reason=str(field(dispute, "reason") or "unknown"),
        status=_DISPUTE_STATUS.get(str(field(dispute, "status")), DisputeStatus.needs_response),
        evidence_due_by=as_utc(field(dispute, "reply_by_date")),
    )


# --- subscriptions -------------------------------------------------------------------------


def interval(billing_frequency: int | None) -> str:
    """Braintree bills every N months."""
    if billing_frequency in (None, 1):
        return "month"
    if billing_frequency == 12:
        return "year"
    return f"{billing_frequency} months"


def ends_at_period_end(subscription: Any) -> bool:
    """A live subscription set to stop after its current billing cycle."""
    if field(subscription, "never_expires") or field(subscription, "status") not in (
        "Active",
        "Past Due",
    ):
        return False
    cycles = field(subscription, "number_of_billing_cycles")
    current = field(subscription, "current_billing_cycle") or 0
    return cycles is not None and current >= int(cycles)


def parse_subscription(
    subscription: Any, *, customer_id: str, currency: str, billing_frequency: int | None
) -> Subscription:
    raw_status = str(field(subscription, "status"))
    in_trial = field(subscription, "trial_period") and not field(
        subscription, "current_billing_cycle"
    )
    if raw_status in ("Active", "Pending") and in_trial:
        status = SubscriptionStatus.trialing
    elif raw_status == "Pending":  # a first billing date still to come, without a trial
        status = SubscriptionStatus.active
    else:
        status = _SUBSCRIPTION_STATUS.get(raw_status, SubscriptionStatus.incomplete)
    price = field(subscription, "next_billing_period_amount")
    if price is None:
        price = subscription.price
    canceled = last_change(field(subscription, "status_history"), "Canceled")
    period_end = field(subscription, "next_billing_date") or field(
        subscription, "billing_period_end_date"
    )
    return Subscription(
        gateway=NAME,
        id=str(subscription.id),
        customer_id=customer_id,
        plan=str(field(subscription, "plan_id") or ""),
        status=status,
        amount=money_from_braintree(price, currency),
        interval=interval(billing_frequency),
        current_period_end=as_utc(period_end),
        cancel_at_period_end=ends_at_period_end(subscription),
        canceled_at=as_utc(field(canceled, "timestamp")) if canceled is not None else None,
    )


# --- errors --------------------------------------------------------------------------------

# Braintree's validation error codes (ErrorCodes in its SDKs) in our words.
ERROR_CODES: dict[str, ErrorCode] = {
    "91506": ErrorCode.not_settled,  # cannot refund a transaction unless it is settled
    "91574": ErrorCode.not_settled,  # cannot refund a settling transaction (on this account)
    "91512": ErrorCode.already_refunded,  # has already been completely refunded
    "91521": ErrorCode.amount_too_large,  # refund amount is too large
    "91522": ErrorCode.amount_too_large,  # settlement amount is too large
    "91505": ErrorCode.invalid_state,  # cannot refund a credit
    "91504": ErrorCode.invalid_state,  # can only be voided if authorized or submitted
    "91507": ErrorCode.invalid_state,  # cannot submit for settlement unless authorized
    "915103": ErrorCode.invalid_state,  # cannot submit for partial settlement
    "81901": ErrorCode.invalid_state,  # cannot edit a canceled subscription
    "81905": ErrorCode.invalid_state,  # subscription has already been canceled
    "91909": ErrorCode.invalid_state,  # number of billing cycles is too small
    "81503": ErrorCode.rejected,  # amount is an invalid format
    "81531": ErrorCode.rejected,  # amount must be greater than zero
    "91513": ErrorCode.rejected,  # merchant account ID is invalid
    "91514": ErrorCode.rejected,  # merchant account is suspended
}


def error_code(raw_code: str | None) -> ErrorCode:
    return ERROR_CODES.get(raw_code or "", ErrorCode.rejected)
