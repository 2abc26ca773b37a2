"""Stripe's objects as ours, and Stripe's money rules: pure conversion, no I/O.

Amounts cross the boundary only through `to_stripe_amount` and `from_stripe_amount`,
because Stripe's minor units differ from ISO 4217's for a few currencies
(docs.stripe.com/currencies). Nothing here talks to Stripe: the functions take the
JSON Stripe sends (as dicts) and give models, so they are tested without a server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bot.disputes.evidence import TEXT_FIELDS, Evidence, EvidenceFile
from bot.gateways.base import ErrorCode, GatewayError
from bot.models import (
    Address,
    Charge,
    ChargeStatus,
    Coupon,
    Customer,
    Dispute,
    DisputeStatus,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Refund,
    Subscription,
    SubscriptionStatus,
    TaxId,
)
from bot.money import Money, exponent, normalize_currency

NAME = "stripe"

# Our marks in an object's metadata: the approval's key (found again after Stripe's
# 24-hour idempotency window) and the agent's reason.
KEY_META = "chargedesk_idempotency_key"
REASON_META = "chargedesk_reason"
# On a schedule phase we set: the name of its plan, for the card (phases name prices by ID).
PLAN_META = "chargedesk_plan"
METADATA_VALUE_MAX = 500  # Stripe refuses longer metadata values
STRIPE_REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})

# docs.stripe.com/currencies: amounts are whole units for these...
ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV"}
    | {"XAF", "XOF", "XPF"}
)
# ...and three-decimal for these, with the last digit always 0 on payments.
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

_SUBSCRIPTION_STATUSES = {
    "trialing": SubscriptionStatus.trialing,
    "active": SubscriptionStatus.active,
    "past_due": SubscriptionStatus.past_due,
    "unpaid": SubscriptionStatus.unpaid,
    "canceled": SubscriptionStatus.canceled,
    "incomplete": SubscriptionStatus.incomplete,
    "incomplete_expired": SubscriptionStatus.canceled,
    # A paused subscription (trial over, no payment method) bills nothing, like unpaid.
    "paused": SubscriptionStatus.unpaid,
}

_DISPUTE_STATUSES = {
    "warning_needs_response": DisputeStatus.needs_response,
    "needs_response": DisputeStatus.needs_response,
    "warning_under_review": DisputeStatus.under_review,
    "under_review": DisputeStatus.under_review,
    "warning_closed": DisputeStatus.won,
    "won": DisputeStatus.won,
    "prevented": DisputeStatus.won,
    "lost": DisputeStatus.lost,
}


# --- money -------------------------------------------------------------------------------


def stripe_exponent(currency: str) -> int:
    """Minor-unit digits Stripe uses for a currency (JPY 0, EUR 2, ISK 2, KWD 3)."""
    code = normalize_currency(currency)
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    # All else is two-decimal, ISK and UGX included: they became zero-decimal, but
    # Stripe keeps two digits "where the decimal amount is always 00" (5 ISK is 500).
    return 2


def from_stripe_amount(value: int, currency: str) -> Money:
    """A Stripe `amount` as exact Money in ISO minor units (ISK 500 from Stripe is 5 ISK)."""
    code = normalize_currency(currency)
    shift = stripe_exponent(code) - exponent(code)
    if shift < 0:
        return Money(minor=value * 10**-shift, currency=code)
    minor, rest = divmod(value, 10**shift)
    if rest:
        # Only pre-2023 fractional ISK charges can do this; refuse rather than round money.
        raise GatewayError(
            ErrorCode.invalid_state,
            f"Stripe amount {value} in {code} has a fraction {code} cannot hold",
            gateway=NAME,
        )
    return Money(minor=minor, currency=code)


def to_stripe_amount(amount: Money) -> int:
    """Money as the integer Stripe expects in `amount` fields."""
    shift = stripe_exponent(amount.currency) - exponent(amount.currency)
    if shift >= 0:
        value = amount.minor * 10**shift
    else:
        value, rest = divmod(amount.minor, 10**-shift)
        if rest:
            raise GatewayError(
                ErrorCode.rejected,
                f"Stripe cannot move {amount.plain()}: too many decimals for {amount.currency}",
                gateway=NAME,
            )
    if amount.currency in THREE_DECIMAL and value % 10:
        raise GatewayError(
            ErrorCode.rejected,
            f"Stripe only moves {amount.currency} in steps of 0.010: {amount.plain()} is not one",
            gateway=NAME,
        )
    return value


# --- small helpers -----------------------------------------------------------------------


def expandable_id(value: Any) -> str | None:
    """An expandable field's ID, whether Stripe sent the ID or the whole object."""
    if isinstance(value, dict):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return value if isinstance(value, str) else None


def stripe_time(value: Any) -> datetime | None:
    """A Stripe timestamp (Unix seconds) as an aware datetime; None when absent."""
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else None


def metadata_of(raw: Mapping[str, Any]) -> dict[str, Any]:
    """An object's metadata, or an empty dict."""
    found = raw.get("metadata")
    return found if isinstance(found, dict) else {}


def clip_metadata(text: str) -> str:
    """Text cut to what Stripe accepts as a metadata value."""
    return text[:METADATA_VALUE_MAX]


def stripe_refund_reason(reason: str) -> str | None:
    """Stripe's refund `reason` takes three words; ours is free text that may start with one."""
    words = re.split(r"[\s:,.;]+", reason.strip().lower(), maxsplit=1)
    return words[0] if words and words[0] in STRIPE_REFUND_REASONS else None


def _number(value: float) -> str:
    return f"{value:g}"


def coupon_of(raw: Mapping[str, Any], code: str | None = None) -> Coupon:
    """A Stripe coupon as ours; `code` is the promotion code it was found by, if any."""
    percent, amount = raw.get("percent_off"), raw.get("amount_off")
    return Coupon(
        gateway=NAME,
        code=code or raw["id"],
        name=raw.get("name"),
        # Stripe sends a JSON number (12.5): its shortest text is the exact percentage.
        percent_off=Decimal(str(percent)) if percent is not None else None,
        amount_off=(
            from_stripe_amount(amount, raw["currency"])
            if amount is not None and raw.get("currency")
            else None
        ),
        duration=raw.get("duration") or "once",
        duration_in_months=raw.get("duration_in_months"),
    )


def describe_discount(coupon: Mapping[str, Any], code: str | None = None) -> str:
    """`WELCOME10: 10% off, forever`, `SPRING: €5.00 off, for 3 months`."""
    label = code or coupon.get("name") or coupon.get("id") or "coupon"
    if coupon.get("percent_off") is not None:
        off = f"{_number(float(coupon['percent_off']))}% off"
    elif coupon.get("amount_off") is not None and coupon.get("currency"):
        off = f"{from_stripe_amount(coupon['amount_off'], coupon['currency']).format()} off"
    else:
        off = "discount"
    duration = coupon.get("duration")
    if duration == "repeating":
        months = coupon.get("duration_in_months") or 0
        when = f"for {months} month{'s' if months != 1 else ''}"
    else:
        when = duration or "once"
    return f"{label}: {off}, {when}"


def parse_charge(raw: Mapping[str, Any], intent_status: str | None = None) -> Charge:
    """A Stripe charge as ours; `intent_status` tells a voided hold from a live one."""
    currency = raw["currency"]
    amount = raw["amount"]
    captured = raw.get("captured", True)
    amount_captured = raw.get("amount_captured")
    if amount_captured is None:  # API versions before 2020 (and localstripe) lack it
        amount_captured = amount if captured else 0
    # Stripe counts an uncaptured remainder (a partial capture, a released hold) as
    # refunded; we count only money that went back after being taken.
    released = amount - amount_captured
    refunded = max(0, (raw.get("amount_refunded") or 0) - released)
    if raw.get("status") == "failed":
        status = ChargeStatus.failed
    elif raw.get("disputed"):
        status = ChargeStatus.disputed
    elif not captured:
        voided = raw.get("refunded") or intent_status == "canceled"
        status = ChargeStatus.voided if voided else ChargeStatus.authorized
    elif amount_captured and refunded >= amount_captured:
        status = ChargeStatus.refunded
    elif refunded:
        status = ChargeStatus.partially_refunded
    else:
        status = ChargeStatus.succeeded
    return Charge(
        gateway=NAME,
        id=raw["id"],
        customer_id=expandable_id(raw.get("customer")),
        amount=from_stripe_amount(amount, currency),
        amount_captured=from_stripe_amount(amount_captured, currency).minor,
        amount_refunded=from_stripe_amount(refunded, currency).minor,
        status=status,
        description=raw.get("description"),
        invoice_id=expandable_id(raw.get("invoice")),
        payment_intent_id=expandable_id(raw.get("payment_intent")),
        created=stripe_time(raw.get("created")),
        failure_message=raw.get("failure_message"),
    )


def parse_refund(raw: Mapping[str, Any]) -> Refund:
    """A Stripe refund as ours, with our reason where we wrote one."""
    return Refund(
        gateway=NAME,
        id=raw["id"],
        charge_id=expandable_id(raw.get("charge")) or "",
        amount=from_stripe_amount(raw["amount"], raw["currency"]),
        status=raw.get("status") or "succeeded",
        reason=metadata_of(raw).get(REASON_META) or raw.get("reason"),
        created=stripe_time(raw.get("created")),
    )


def parse_subscription(raw: Mapping[str, Any]) -> Subscription:
    """A Stripe subscription as ours, priced from all its items."""
    items = (raw.get("items") or {}).get("data") or []
    first = items[0] if items else {}
    price = first.get("price") or first.get("plan") or raw.get("plan") or {}
    currency = raw.get("currency") or price.get("currency")
    if not currency:
        raise GatewayError(
            ErrorCode.invalid_state, f"subscription {raw['id']} has no currency", gateway=NAME
        )
    total = 0
    for item in items:
        unit = item.get("price") or item.get("plan") or {}
        each = unit.get("unit_amount")
        if each is None:
            each = unit.get("amount") or 0
        total += each * (item.get("quantity") or 1)
    recurring = price.get("recurring") or price
    interval = recurring.get("interval") or "month"
    count = recurring.get("interval_count") or 1
    period_end = raw.get("current_period_end")  # moved onto items in API 2025-03-31
    if period_end is None:
        ends = [i["current_period_end"] for i in items if i.get("current_period_end")]
        period_end = max(ends) if ends else None
    return Subscription(
        gateway=NAME,
        id=raw["id"],
        customer_id=expandable_id(raw.get("customer")) or "",
        plan=price.get("nickname") or price.get("lookup_key") or price.get("id") or "",
        status=_SUBSCRIPTION_STATUSES.get(raw.get("status") or "", SubscriptionStatus.incomplete),
        amount=from_stripe_amount(total, currency),
        interval=interval if count == 1 else f"{count} {interval}s",
        current_period_end=stripe_time(period_end),
        cancel_at_period_end=bool(raw.get("cancel_at_period_end")),
        canceled_at=stripe_time(raw.get("canceled_at")),
        paused=bool(raw.get("pause_collection")),
        quantity=first.get("quantity") or 1,
        trial_end=stripe_time(raw.get("trial_end")),
        **_next_plan(raw.get("schedule"), price.get("id"), first.get("quantity") or 1),
    )


def _next_plan(schedule: Any, price_id: str | None, quantity: int) -> dict[str, Any]:
    """The plan a live schedule (expanded) moves the subscription to after its current phase,
    where that differs from what it is on now: `next_plan` and `next_plan_from`."""
    if not isinstance(schedule, Mapping) or schedule.get("status") not in ("active", "not_started"):
        return {}
    ends = (schedule.get("current_phase") or {}).get("end_date") or 0
    for phase in schedule.get("phases") or []:
        items = phase.get("items") or []
        if (phase.get("start_date") or 0) < ends or not items:
            continue
        price = expandable_id(items[0].get("price"))
        if (price, items[0].get("quantity") or 1) == (price_id, quantity):
            continue
        name = (phase.get("metadata") or {}).get(PLAN_META) or price
        return {"next_plan": name, "next_plan_from": stripe_time(phase.get("start_date"))}
    return {}


def subscription_period(raw: Mapping[str, Any]) -> tuple[datetime, datetime] | None:
    """The subscription's current period, from its items since API 2025-03-31."""
    items = (raw.get("items") or {}).get("data") or []
    starts = [i["current_period_start"] for i in items if i.get("current_period_start")]
    ends = [i["current_period_end"] for i in items if i.get("current_period_end")]
    start = stripe_time(raw.get("current_period_start") or (min(starts) if starts else None))
    end = stripe_time(raw.get("current_period_end") or (max(ends) if ends else None))
    return (start, end) if start is not None and end is not None else None


def invoice_payment_id(raw: Mapping[str, Any]) -> str | None:
    """What paid an invoice, from one of its invoice payments: a payment intent or a charge."""
    if raw.get("status") != "paid":
        return None
    payment = raw.get("payment") or {}
    return expandable_id(payment.get("payment_intent") or payment.get("charge"))


def parse_customer(customer_id: str, raw: Mapping[str, Any]) -> Customer:
    """A Stripe customer as ours."""
    address = raw.get("address") or {}
    locales = raw.get("preferred_locales") or []
    return Customer(
        gateway=NAME,
        id=customer_id,
        email=raw.get("email"),
        name=raw.get("name"),
        created=stripe_time(raw.get("created")),
        address=Address(**{k: address.get(k) for k in ADDRESS_FIELDS}) if address else None,
        locale=locales[0] if locales else None,
        # "reverse" is Stripe's reverse-charge flag; ours follows from the customer's VAT ID.
        tax_exempt=raw.get("tax_exempt") == "exempt",
    )


ADDRESS_FIELDS = ("line1", "line2", "postal_code", "city", "state", "country")


def parse_invoice_lines(raw: Mapping[str, Any], amount_due: Money) -> tuple[InvoiceLine, ...]:
    """The invoice's lines when they add up to what is due (tax included), else none.

    With tax added on top, Stripe's line amounts are net: the document then shows
    one line for the total rather than lines that do not add up.
    """
    currency = raw["currency"]
    lines = tuple(
        InvoiceLine(
            description=item.get("description") or "—",
            quantity=item.get("quantity") or 1,
            amount=from_stripe_amount(item.get("amount") or 0, currency),
        )
        for item in (raw.get("lines") or {}).get("data") or []
    )
    if sum(line.amount.minor for line in lines) != amount_due.minor:
        return ()
    return lines


def parse_invoice(raw: Mapping[str, Any]) -> Invoice:
    """A Stripe invoice as ours."""
    currency = raw["currency"]
    amount_due = from_stripe_amount(raw.get("amount_due") or 0, currency)
    return Invoice(
        gateway=NAME,
        id=raw["id"],
        customer_id=expandable_id(raw.get("customer")) or "",
        number=raw.get("number"),
        status=InvoiceStatus(raw.get("status") or "draft"),
        amount_due=amount_due,
        amount_paid=from_stripe_amount(raw.get("amount_paid") or 0, currency),
        due_date=stripe_time(raw.get("due_date")),
        created=stripe_time(raw.get("created")),
        charge_id=expandable_id(raw.get("charge")),  # gone from invoices since API 2025-03-31
        pdf_url=raw.get("invoice_pdf"),
        hosted_url=raw.get("hosted_invoice_url"),
        lines=parse_invoice_lines(raw, amount_due),
        paid_at=stripe_time((raw.get("status_transitions") or {}).get("paid_at")),
    )


def parse_dispute(raw: Mapping[str, Any]) -> Dispute:
    """A Stripe dispute as ours."""
    details = raw.get("evidence_details") or {}
    return Dispute(
        gateway=NAME,
        id=raw["id"],
        charge_id=expandable_id(raw.get("charge")) or "",
        amount=from_stripe_amount(raw["amount"], raw["currency"]),
        reason=raw.get("reason") or "general",
        status=_DISPUTE_STATUSES.get(raw.get("status") or "", DisputeStatus.under_review),
        evidence_due_by=stripe_time(details.get("due_by")),
    )


def parse_tax_id(raw: Mapping[str, Any]) -> TaxId:
    """A Stripe tax ID as ours; `verified` is None while Stripe has not checked it."""
    verification = raw.get("verification") or {}
    verified = {"verified": True, "unverified": False}.get(verification.get("status") or "")
    return TaxId(
        gateway=NAME,
        id=raw["id"],
        type=raw["type"],
        value=raw["value"],
        country=raw.get("country"),
        verified=verified,
    )


def discount_applies(
    discount: Mapping[str, Any], wanted: Mapping[str, str], coupon: Mapping[str, Any]
) -> bool:
    """Whether a subscription's discount is the coupon or promotion code wanted."""
    if "promotion_code" in wanted:
        return expandable_id(discount.get("promotion_code")) == wanted["promotion_code"]
    source = discount.get("source")
    current = discount.get("coupon") or (source.get("coupon") if isinstance(source, dict) else None)
    return expandable_id(current) == coupon.get("id") and discount.get("promotion_code") is None


# --- dispute evidence --------------------------------------------------------------------

# Our evidence fields Stripe has a field of its own for; the others go, each under its
# label, into `uncategorized_text`.
_EVIDENCE_TEXT = {
    "customer_name": "customer_name",
    "customer_email": "customer_email_address",
    "billing_address": "billing_address",
    "product_description": "product_description",
    "service_date": "service_date",
}
# Our documents as Stripe's file fields (one file each): the first of each kind is sent.
EVIDENCE_FILES = {
    "receipt": "receipt",
    "invoice": "service_documentation",
    "credit_note": "uncategorized_file",
}


def evidence_files(evidence: Evidence) -> dict[str, EvidenceFile]:
    """Stripe's file field -> the document sent in it."""
    chosen: dict[str, EvidenceFile] = {}
    for file in evidence.files:
        chosen.setdefault(EVIDENCE_FILES[file.kind], file)
    return chosen


def stripe_evidence(evidence: Evidence, uploaded: Mapping[str, str]) -> dict[str, str]:
    """Stripe's `evidence[...]` for ours; `uploaded` maps each file field to its file ID."""
    fields = {
        _EVIDENCE_TEXT[name]: value for name, _, value in evidence.texts() if name in _EVIDENCE_TEXT
    }
    rest = evidence.combined_text(tuple(n for n in TEXT_FIELDS if n not in _EVIDENCE_TEXT))
    if rest:
        fields["uncategorized_text"] = rest
    return {**fields, **uploaded}
