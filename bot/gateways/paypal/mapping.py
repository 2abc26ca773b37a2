"""PayPal's objects as ours, and PayPal's money rules: pure conversion, no I/O.

PayPal writes money as `{"currency_code", "value"}` with a decimal string, and takes
HUF, JPY and TWD in whole units although ISO 4217 gives HUF and TWD two decimals.
Charges are captures, plus authorizations not yet fully captured; a captured
authorization is shown through its captures. Payers are found in Transaction
Search rows (`payers_from_rows`). Nothing here talks to PayPal: the functions take
PayPal's JSON (as dicts) and give models, so they are tested without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bot.gateways.base import ErrorCode, GatewayError
from bot.models import (
    Charge,
    ChargeStatus,
    Invoice,
    InvoiceStatus,
    Refund,
    Subscription,
    SubscriptionStatus,
)
from bot.money import Money, MoneyError, exponent, normalize_currency

NAME = "paypal"
# PayPal takes these in whole units although ISO 4217 gives HUF and TWD two decimals.
ZERO_DECIMAL_AT_PAYPAL = frozenset({"HUF", "JPY", "TWD"})
UNKNOWN_PAYER = "unknown payer"

Json = dict[str, Any]

# --- money -------------------------------------------------------------------------------


def paypal_decimals(currency: str) -> int:
    """Decimals PayPal accepts for a currency: none for HUF, JPY and TWD, else ISO 4217's."""
    code = normalize_currency(currency)
    return 0 if code in ZERO_DECIMAL_AT_PAYPAL else exponent(code)


def money_from_paypal(amount: Mapping[str, Any]) -> Money:
    """PayPal's `{"currency_code", "value"}` (a decimal string) as exact Money."""
    currency = normalize_currency(str(amount["currency_code"]))
    minor = Decimal(str(amount["value"])).scaleb(exponent(currency))
    if minor != minor.to_integral_value():
        raise MoneyError(f"{amount['value']} {currency} has more decimals than {currency} has")
    return Money(minor=int(minor), currency=currency)


def money_to_paypal(amount: Money) -> dict[str, str]:
    """Money as PayPal's `{"currency_code", "value"}`, refusing what PayPal cannot take."""
    digits = paypal_decimals(amount.currency)
    value = amount.decimal
    if value != value.quantize(Decimal(1).scaleb(-digits)):
        raise GatewayError(
            ErrorCode.rejected,
            f"PayPal takes {amount.currency} in whole units only: {amount.format()} cannot be sent",
            gateway=NAME,
        )
    return {"currency_code": amount.currency, "value": f"{value:.{digits}f}"}


# --- PayPal objects to ours ----------------------------------------------------------------

_CAPTURE_STATUS = {
    "COMPLETED": ChargeStatus.succeeded,
    "PARTIALLY_REFUNDED": ChargeStatus.partially_refunded,
    "REFUNDED": ChargeStatus.refunded,
    # Pending funds (an e-check, a review): shown as paid, with nothing captured yet.
    "PENDING": ChargeStatus.succeeded,
    "DECLINED": ChargeStatus.failed,
    "FAILED": ChargeStatus.failed,
}
_AUTHORIZATION_STATUS = {
    "CREATED": ChargeStatus.authorized,
    "PENDING": ChargeStatus.authorized,
    "PARTIALLY_CAPTURED": ChargeStatus.authorized,
    "VOIDED": ChargeStatus.voided,
    "DENIED": ChargeStatus.failed,
    "EXPIRED": ChargeStatus.voided,
}
_SUBSCRIPTION_STATUS = {
    "APPROVAL_PENDING": SubscriptionStatus.incomplete,
    "APPROVED": SubscriptionStatus.incomplete,
    "ACTIVE": SubscriptionStatus.active,
    # Suspended (by the merchant, or after too many failed payments): no longer billed.
    "SUSPENDED": SubscriptionStatus.unpaid,
    "CANCELLED": SubscriptionStatus.canceled,
    "EXPIRED": SubscriptionStatus.canceled,
}
_INVOICE_STATUS = {
    "DRAFT": InvoiceStatus.draft,
    "SCHEDULED": InvoiceStatus.draft,
    "SENT": InvoiceStatus.open,
    "UNPAID": InvoiceStatus.open,
    "PARTIALLY_PAID": InvoiceStatus.open,
    "PAYMENT_PENDING": InvoiceStatus.open,
    "PAID": InvoiceStatus.paid,
    "MARKED_AS_PAID": InvoiceStatus.paid,
    "REFUNDED": InvoiceStatus.paid,
    "PARTIALLY_REFUNDED": InvoiceStatus.paid,
    "MARKED_AS_REFUNDED": InvoiceStatus.paid,
    "CANCELLED": InvoiceStatus.void,
}
_REFUND_STATUS = {
    "COMPLETED": "succeeded",
    "PENDING": "pending",
    "FAILED": "failed",
    "CANCELLED": "canceled",
}
_INTERVALS = {"DAY": "day", "WEEK": "week", "MONTH": "month", "YEAR": "year"}


def paypal_time(text: Any) -> datetime | None:
    """A PayPal date-time (RFC 3339) as an aware datetime; None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- what a lookup gathers ---------------------------------------------------------------


@dataclass
class Payer:
    """A payer as far as PayPal told us: any field may be unknown."""

    id: str | None
    email: str | None
    name: str | None = None


@dataclass
class Found:
    """One payer and the IDs of what they own, before anything is fetched."""

    payer: Payer
    captures: dict[str, Json | None] = field(default_factory=dict)  # ID -> search row
    authorizations: dict[str, Json | None] = field(default_factory=dict)  # ID -> search row
    subscriptions: set[str] = field(default_factory=set)
    invoices: dict[str, Json] = field(default_factory=dict)
    row_refunds: dict[str, list[Json]] = field(default_factory=dict)  # capture ID -> rows

    def merge(self, other: Found) -> None:
        for capture_id, row in other.captures.items():
            self.captures.setdefault(capture_id, row)
        for authorization_id, row in other.authorizations.items():
            self.authorizations.setdefault(authorization_id, row)
        self.subscriptions |= other.subscriptions
        self.invoices.update(other.invoices)
        for capture_id, rows in other.row_refunds.items():
            self.row_refunds.setdefault(capture_id, rows)
        self.payer.name = self.payer.name or other.payer.name
        self.payer.email = self.payer.email or other.payer.email


def row_info(row: Json) -> Json:
    """A search row's `transaction_info`."""
    return row.get("transaction_info") or {}


def row_order(row: Json | None) -> str | None:
    """The order a search row belongs to, when its reference says so."""
    info = row_info(row) if row else {}
    if info.get("paypal_reference_id_type") == "ODR":
        return info.get("paypal_reference_id")
    return None


def related_id(payment: Json, name: str) -> str | None:
    """An ID from a payment's `supplementary_data.related_ids` (order_id, authorization_id)."""
    return ((payment.get("supplementary_data") or {}).get("related_ids") or {}).get(name)


def row_time(row: Json | None) -> datetime | None:
    """When a search row's transaction started."""
    return paypal_time(row_info(row).get("transaction_initiation_date")) if row else None


def full_name(name: Any) -> str | None:
    """A PayPal name object as one string."""
    if not isinstance(name, dict):
        return None
    full = name.get("full_name") or name.get("alternate_full_name")
    if full:
        return str(full)
    parts = [name.get("given_name"), name.get("surname")]
    return " ".join(str(p) for p in parts if p) or None


def row_payer(row: Json) -> Payer:
    """The payer a search row names."""
    payer = row.get("payer_info") or {}
    return Payer(
        payer.get("account_id"), payer.get("email_address"), full_name(payer.get("payer_name"))
    )


def payers_from_rows(rows: list[Json], email: str) -> list[Found]:
    """Rows of payers with this e-mail (any case), grouped by payer ID, latest payer first."""
    wanted = email.strip().lower()
    refunds: dict[str, list[Json]] = {}
    for row in rows:
        info = row_info(row)
        if str(info.get("transaction_event_code", "")).startswith("T11") and info.get(
            "paypal_reference_id"
        ):
            refunds.setdefault(info["paypal_reference_id"], []).append(row)
    found: dict[str, Found] = {}
    latest: dict[str, datetime] = {}
    for row in rows:
        payer = row_payer(row)
        if (payer.email or "").strip().lower() != wanted:
            continue
        key = payer.id or wanted
        entry = found.setdefault(key, Found(payer))
        entry.payer.name = entry.payer.name or payer.name
        info = row_info(row)
        when = row_time(row) or datetime.min.replace(tzinfo=UTC)
        latest[key] = max(latest.get(key, when), when)
        code = str(info.get("transaction_event_code", ""))
        txn = info.get("transaction_id")
        amount = info.get("transaction_amount") or {}
        if info.get("paypal_reference_id_type") == "SUB" and info.get("paypal_reference_id"):
            entry.subscriptions.add(info["paypal_reference_id"])
        if not txn:
            continue
        if code.startswith("T00") and not str(amount.get("value", "")).startswith("-"):
            entry.captures[txn] = row
            if txn in refunds:
                entry.row_refunds[txn] = refunds[txn]
        elif code in ("T1300", "T1301"):
            entry.authorizations[txn] = row
    return sorted(found.values(), key=lambda f: latest[f.payer.id or wanted], reverse=True)


def order_payments(order: Json | None, kind: str) -> list[Json]:
    """An order's payments of one kind (captures, authorizations, refunds)."""
    if not order:
        return []
    return [
        p
        for unit in order.get("purchase_units") or []
        for p in (unit.get("payments") or {}).get(kind) or []
    ]


def up_id(payment: Json) -> str | None:
    """The ID a payment's `up` link points at: a refund's capture, a capture's authorization."""
    for link in payment.get("links") or []:
        if link.get("rel") == "up" and link.get("href"):
            return str(link["href"]).rstrip("/").rsplit("/", 1)[-1]
    return None


def order_refunds(order: Json | None) -> dict[str, list[Json]]:
    """An order's refunds by the capture each belongs to."""
    refunds: dict[str, list[Json]] = {}
    for refund in order_payments(order, "refunds"):
        capture_id = up_id(refund)
        if capture_id:
            refunds.setdefault(capture_id, []).append(refund)
    return refunds


def authorization_captures(order: Json | None, authorization_id: str) -> list[Json]:
    """The captures of one authorization within its order."""
    return [c for c in order_payments(order, "captures") if up_id(c) == authorization_id]


def order_payer(order: Json | None) -> Payer:
    """The payer an order names (its PayPal wallet first)."""
    if not order:
        return Payer(None, None)
    wallet = (order.get("payment_source") or {}).get("paypal") or {}
    payer = order.get("payer") or {}
    return Payer(
        wallet.get("account_id") or payer.get("payer_id"),
        wallet.get("email_address") or payer.get("email_address"),
        full_name(wallet.get("name") or payer.get("name")),
    )


def _refunded(refunds: list[Json], currency: str) -> int:
    return sum(
        money_from_paypal(r["amount"]).minor
        for r in refunds
        if r.get("status", "COMPLETED") in ("COMPLETED", "PENDING")
        and r.get("amount")
        and r["amount"].get("currency_code") == currency
    )


def parse_capture(body: Json, refunds: list[Json], customer_id: str | None) -> Charge:
    """A capture and its refunds as our charge."""
    amount = money_from_paypal(body["amount"])
    status_text = str(body.get("status"))
    status = _CAPTURE_STATUS.get(status_text, ChargeStatus.failed)
    captured = 0 if status == ChargeStatus.failed or status_text == "PENDING" else amount.minor
    refunded = _refunded(refunds, amount.currency)
    if status == ChargeStatus.refunded:
        refunded = amount.minor
    elif status == ChargeStatus.succeeded:
        refunded = 0
    reason = (body.get("status_details") or {}).get("reason")
    return Charge(
        gateway=NAME,
        id=body["id"],
        customer_id=customer_id,
        amount=amount,
        amount_captured=captured,
        amount_refunded=min(refunded, captured),
        status=status,
        description=f"pending at PayPal ({reason})" if status_text == "PENDING" else None,
        created=paypal_time(body.get("create_time")),
        failure_message=(reason or f"{status_text.lower()} at PayPal")
        if status == ChargeStatus.failed
        else None,
    )


def parse_authorization(
    body: Json,
    captures: list[Json],
    refunds_by_capture: Mapping[str, list[Json]],
    customer_id: str | None,
) -> Charge:
    """An authorization as our charge: what is left to capture, or its captures' sum."""
    amount = money_from_paypal(body["amount"])
    status_text = str(body.get("status"))
    captured = sum(
        money_from_paypal(c["amount"]).minor for c in captures if c.get("status") != "DECLINED"
    )
    description = None
    if status_text == "CAPTURED":
        refunded = sum(
            _refunded(refunds_by_capture.get(c["id"], []), amount.currency) for c in captures
        )
        refunded = min(refunded, captured)
        status = (
            ChargeStatus.refunded
            if captured and refunded >= captured
            else ChargeStatus.partially_refunded
            if refunded
            else ChargeStatus.succeeded
        )
        ids = ", ".join(c["id"] for c in captures)
        description = f"captured as {ids}" if ids else None
        return Charge(
            gateway=NAME,
            id=body["id"],
            customer_id=customer_id,
            amount=amount,
            amount_captured=captured,
            amount_refunded=refunded,
            status=status,
            description=description,
            created=paypal_time(body.get("create_time")),
        )
    status = _AUTHORIZATION_STATUS.get(status_text, ChargeStatus.failed)
    if status_text == "PARTIALLY_CAPTURED":
        # What is left to capture; the captured part is shown by its captures.
        amount = Money(minor=max(amount.minor - captured, 0), currency=amount.currency)
        description = "partly captured as " + ", ".join(c["id"] for c in captures)
    return Charge(
        gateway=NAME,
        id=body["id"],
        customer_id=customer_id,
        amount=amount,
        status=status,
        description=description,
        created=paypal_time(body.get("create_time")),
        failure_message=f"{status_text.lower()} at PayPal"
        if status == ChargeStatus.failed
        else None,
    )


def parse_row_charge(row: Json, customer_id: str | None) -> Charge:
    """A payment PayPal's Payments API does not serve (an older sale), from its search row."""
    info = row_info(row)
    amount = money_from_paypal(info["transaction_amount"])
    status = {
        "S": ChargeStatus.succeeded,
        "V": ChargeStatus.refunded,
        "P": ChargeStatus.succeeded,
        "D": ChargeStatus.failed,
    }.get(str(info.get("transaction_status")), ChargeStatus.failed)
    captured = 0 if info.get("transaction_status") in ("P", "D") else amount.minor
    return Charge(
        gateway=NAME,
        id=str(info["transaction_id"]),
        customer_id=customer_id,
        amount=amount,
        amount_captured=captured,
        amount_refunded=captured if status == ChargeStatus.refunded else 0,
        status=status,
        description=info.get("transaction_subject"),
        created=row_time(row),
    )


def refund_json_from_row(row: Json) -> Json:
    """A refund's search row in the shape of a Payments refund."""
    info = row_info(row)
    value = str(info["transaction_amount"]["value"]).lstrip("-")
    return {
        "id": info.get("transaction_id"),
        "status": {"S": "COMPLETED", "P": "PENDING", "D": "FAILED"}.get(
            str(info.get("transaction_status")), "COMPLETED"
        ),
        "amount": {"currency_code": info["transaction_amount"]["currency_code"], "value": value},
        "create_time": info.get("transaction_initiation_date"),
    }


def parse_refund(body: Json, capture_id: str, reason: str | None = None) -> Refund:
    """A PayPal refund of a capture as ours."""
    return Refund(
        gateway=NAME,
        id=body["id"],
        charge_id=capture_id,
        amount=money_from_paypal(body["amount"]),
        status=_REFUND_STATUS.get(str(body.get("status")), str(body.get("status")).lower()),
        reason=reason or body.get("note_to_payer"),
        created=paypal_time(body.get("create_time")),
    )


def parse_subscription(body: Json) -> Subscription:
    """A PayPal subscription (read with `fields=plan`) as ours."""
    billing = body.get("billing_info") or {}
    subscriber = body.get("subscriber") or {}
    price, interval = _plan_price(body)
    if price is None:
        last = (billing.get("last_payment") or {}).get("amount")
        balance = billing.get("outstanding_balance")
        price = (
            money_from_paypal(last)
            if last
            else Money(minor=0, currency=balance["currency_code"])
            if balance
            else Money(minor=0, currency="USD")
        )
    status_text = str(body.get("status"))
    status = _SUBSCRIPTION_STATUS.get(status_text, SubscriptionStatus.incomplete)
    if status == SubscriptionStatus.active:
        if any(
            c.get("tenure_type") == "TRIAL" and int(c.get("cycles_remaining") or 0) > 0
            for c in billing.get("cycle_executions") or []
        ):
            status = SubscriptionStatus.trialing
        elif int(billing.get("failed_payments_count") or 0) > 0:
            status = SubscriptionStatus.past_due
    cancelled = status_text in ("CANCELLED", "EXPIRED")
    return Subscription(
        gateway=NAME,
        id=body["id"],
        customer_id=subscriber.get("payer_id") or subscriber.get("email_address") or body["id"],
        plan=str((body.get("plan") or {}).get("name") or body.get("plan_id") or "unknown plan"),
        status=status,
        amount=price,
        interval=interval,
        current_period_end=paypal_time(billing.get("next_billing_time")),
        canceled_at=paypal_time(body.get("status_update_time")) if cancelled else None,
        paused=status_text == "SUSPENDED",
    )


def _plan_price(body: Json) -> tuple[Money | None, str]:
    """The regular cycle's price and interval, from the plan details (`fields=plan`)."""
    cycles = (body.get("plan") or {}).get("billing_cycles") or []
    regular = [c for c in cycles if c.get("tenure_type") == "REGULAR"] or cycles
    if not regular:
        return None, "month"
    cycle = regular[-1]
    fixed = (cycle.get("pricing_scheme") or {}).get("fixed_price")
    frequency = cycle.get("frequency") or {}
    unit = _INTERVALS.get(str(frequency.get("interval_unit")), "month")
    count = int(frequency.get("interval_count") or 1)
    interval = unit if count == 1 else f"{count} {unit}s"
    if not fixed:
        return None, interval
    price = money_from_paypal(fixed)
    quantity = Decimal(str(body.get("quantity") or "1"))
    if quantity != 1 and quantity == quantity.to_integral_value():
        price = Money(minor=price.minor * int(quantity), currency=price.currency)
    return price, interval


def recipient_email(invoice: Json) -> str | None:
    """The e-mail an invoice is addressed to."""
    for recipient in invoice.get("primary_recipients") or []:
        email = (recipient.get("billing_info") or {}).get("email_address")
        if email:
            return str(email)
    return None


def recipient_name(invoice: Json) -> str | None:
    """The name an invoice is addressed to."""
    for recipient in invoice.get("primary_recipients") or []:
        name = full_name((recipient.get("billing_info") or {}).get("name"))
        if name:
            return name
    return None


def parse_invoice(body: Json, customer_id: str) -> Invoice:
    """A PayPal invoice as ours, owned by `customer_id`."""
    detail = body.get("detail") or {}
    metadata = detail.get("metadata") or {}
    currency = str(detail.get("currency_code") or (body.get("amount") or {}).get("currency_code"))
    total = (
        money_from_paypal(body["amount"])
        if body.get("amount")
        else Money(minor=0, currency=currency)
    )
    payments = body.get("payments") or {}
    paid = (
        money_from_paypal(payments["paid_amount"])
        if payments.get("paid_amount")
        else Money(minor=0, currency=total.currency)
    )
    transactions = payments.get("transactions") or []
    due = (detail.get("payment_term") or {}).get("due_date")
    return Invoice(
        gateway=NAME,
        id=body["id"],
        customer_id=customer_id,
        number=detail.get("invoice_number"),
        status=_INVOICE_STATUS.get(str(body.get("status")), InvoiceStatus.open),
        amount_due=total,
        amount_paid=paid,
        due_date=paypal_time(due),
        created=paypal_time(metadata.get("create_time")),
        charge_id=transactions[0].get("payment_id") if transactions else None,
        hosted_url=metadata.get("recipient_view_url"),
    )
