"""PayPal webhooks: each delivery verified by PayPal itself, then the event in our words.

PayPal signs with a certificate chain; rather than check it here, the delivery goes
back to PayPal's `verify-webhook-signature` byte for byte, after our own checks of
its headers and age (five minutes either way).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.gateways.base import WebhookRejected
from bot.gateways.events import EventKind, GatewayEvent
from bot.gateways.paypal.client import PayPalAPI
from bot.gateways.paypal.disputes import dispute_status
from bot.gateways.paypal.mapping import NAME, Json, money_from_paypal, paypal_time, up_id
from bot.gateways.paypal.orders import reference_of
from bot.money import Money

WEBHOOK_TOLERANCE = timedelta(minutes=5)


async def verify_and_parse(
    api: PayPalAPI, webhook_id: str | None, body: bytes, headers: Mapping[str, str]
) -> list[GatewayEvent]:
    """The events of a delivery PayPal verifies; WebhookRejected for anything else."""
    if not webhook_id:
        raise WebhookRejected(
            NAME, "paypal.webhook_id is not configured: deliveries cannot be verified"
        )
    lowered = {k.lower(): v for k, v in headers.items()}
    names = ("id", "time", "sig")
    values = {n: lowered.get(f"paypal-transmission-{n}") for n in names}
    cert_url = lowered.get("paypal-cert-url")
    auth_algo = lowered.get("paypal-auth-algo")
    missing = [f"PAYPAL-TRANSMISSION-{n.upper()}" for n in names if not values[n]]
    missing += [
        h for h, v in (("PAYPAL-CERT-URL", cert_url), ("PAYPAL-AUTH-ALGO", auth_algo)) if not v
    ]
    if missing:
        raise WebhookRejected(NAME, f"delivery without {', '.join(missing)}: not from PayPal")
    sent = paypal_time(values["time"])
    if sent is None:
        raise WebhookRejected(NAME, f"unreadable PAYPAL-TRANSMISSION-TIME {values['time']!r}")
    age = datetime.now(UTC) - sent
    if age > WEBHOOK_TOLERANCE or -age > WEBHOOK_TOLERANCE:
        raise WebhookRejected(
            NAME,
            f"stale delivery: sent {sent.isoformat()}, more than "
            f"{int(WEBHOOK_TOLERANCE.total_seconds() // 60)} minutes from now",
        )
    try:
        event = json.loads(body)
    except ValueError:
        raise WebhookRejected(NAME, "delivery body is not JSON") from None
    if not isinstance(event, dict) or not event.get("event_type"):
        raise WebhookRejected(NAME, "delivery body is not a PayPal event")
    fields = {
        "auth_algo": auth_algo,
        "cert_url": cert_url,
        "transmission_id": values["id"],
        "transmission_sig": values["sig"],
        "transmission_time": values["time"],
        "webhook_id": webhook_id,
    }
    # The event goes back byte for byte: PayPal's signature covers the body as sent.
    request = (
        b"{"
        + b"".join(
            json.dumps(k).encode() + b":" + json.dumps(v).encode() + b"," for k, v in fields.items()
        )
        + b'"webhook_event":'
        + body
        + b"}"
    )
    reply = await api.rest(
        "POST",
        "/v1/notifications/verify-webhook-signature",
        content=request,
        verb="verify",
        what=f"webhook delivery {values['id']}",
    )
    status = (reply.body or {}).get("verification_status")
    if status != "SUCCESS":
        raise WebhookRejected(
            NAME, f"PayPal did not verify the delivery's signature ({status or 'no answer'})"
        )
    return [parse_event(event)]


# --- events ----------------------------------------------------------------------

_EVENT_KINDS = {
    "PAYMENT.CAPTURE.REFUNDED": EventKind.refund,
    "PAYMENT.CAPTURE.REVERSED": EventKind.refund,
    "PAYMENT.SALE.REFUNDED": EventKind.refund,
    "PAYMENT.SALE.REVERSED": EventKind.refund,
    "PAYMENT.CAPTURE.COMPLETED": EventKind.payment_succeeded,
    "PAYMENT.SALE.COMPLETED": EventKind.payment_succeeded,
    "PAYMENT.CAPTURE.DENIED": EventKind.payment_failed,
    "PAYMENT.CAPTURE.DECLINED": EventKind.payment_failed,
    "PAYMENT.SALE.DENIED": EventKind.payment_failed,
    "BILLING.SUBSCRIPTION.PAYMENT.FAILED": EventKind.payment_failed,
    "CUSTOMER.DISPUTE.CREATED": EventKind.dispute_created,
    "INVOICING.INVOICE.PAID": EventKind.invoice_paid,
    "BILLING.SUBSCRIPTION.CANCELLED": EventKind.subscription_canceled,
    "BILLING.SUBSCRIPTION.EXPIRED": EventKind.subscription_canceled,
}


def _event_money(amount: Any) -> Money | None:
    """Payments v2 money, or the older `{"total", "currency"}` of sale events."""
    if not isinstance(amount, dict):
        return None
    if "currency_code" in amount and "value" in amount:
        return money_from_paypal(amount)
    if "currency" in amount and "total" in amount:
        return money_from_paypal({"currency_code": amount["currency"], "value": amount["total"]})
    return None


def parse_event(event: Json) -> GatewayEvent:
    """A verified PayPal event as one GatewayEvent (pure: no request is made)."""
    raw_type = str(event["event_type"])
    resource = event.get("resource") or {}
    kind = _EVENT_KINDS.get(raw_type)
    if kind is None:
        kind = (
            EventKind.subscription_updated
            if raw_type.startswith("BILLING.SUBSCRIPTION.")
            else EventKind.other
        )
    related_ids = (resource.get("supplementary_data") or {}).get("related_ids") or {}
    object_id = str(resource.get("id") or "")
    related: str | None = None
    customer: str | None = None
    amount = _event_money(resource.get("amount"))
    status = resource.get("status") or resource.get("state")
    detail: dict[str, str] = {"summary": event["summary"]} if event.get("summary") else {}
    if raw_type.startswith("PAYMENT.CAPTURE.") or raw_type.startswith("PAYMENT.SALE."):
        if kind == EventKind.refund:
            related = related_ids.get("capture_id") or resource.get("sale_id") or up_id(resource)
        else:
            related = related_ids.get("authorization_id") or related_ids.get("order_id")
            if raw_type == "PAYMENT.CAPTURE.COMPLETED" and related_ids.get("authorization_id"):
                kind = EventKind.capture  # an authorization was captured
            if raw_type.startswith("PAYMENT.SALE."):
                related = resource.get("billing_agreement_id") or related
        if reference_of(resource.get("custom_id")):  # a capture of one of our pay links
            detail["payment_request"] = str(reference_of(resource.get("custom_id")))
    elif raw_type.startswith("CHECKOUT.ORDER."):
        # Approved is not paid: the gateway captures it (bot/gateways/paypal/orders.py).
        unit = (resource.get("purchase_units") or [{}])[0]
        amount = _event_money(unit.get("amount"))
        customer = (resource.get("payer") or {}).get("payer_id")
        if reference_of(unit.get("custom_id")):
            detail["payment_request"] = str(reference_of(unit.get("custom_id")))
    elif raw_type.startswith("CUSTOMER.DISPUTE."):
        object_id = str(resource.get("dispute_id") or object_id)
        disputed = (resource.get("disputed_transactions") or [{}])[0]
        related = disputed.get("seller_transaction_id")
        amount = _event_money(resource.get("dispute_amount"))
        customer = (disputed.get("buyer") or {}).get("payer_id")
        status = dispute_status(resource).value if status else None  # in the card's words
        due = paypal_time(resource.get("seller_response_due_date"))
        if due is not None:
            detail["evidence_due_by"] = f"{due:%Y-%m-%d %H:%M} UTC"
    elif raw_type.startswith("INVOICING.INVOICE."):
        invoice = resource.get("invoice") or resource
        object_id = str(invoice.get("id") or object_id)
        amount = _event_money(invoice.get("amount"))
        status = invoice.get("status")
        transactions = (invoice.get("payments") or {}).get("transactions") or []
        related = transactions[0].get("payment_id") if transactions else None
    elif raw_type.startswith("BILLING.SUBSCRIPTION."):
        customer = (resource.get("subscriber") or {}).get("payer_id")
        last = (resource.get("billing_info") or {}).get("last_failed_payment") or {}
        amount = _event_money(last.get("amount")) or amount
    created = paypal_time(event.get("create_time")) or datetime.now(UTC)
    return GatewayEvent(
        gateway=NAME,
        id=str(event.get("id") or ""),
        kind=kind,
        raw_type=raw_type,
        created=created,
        object_id=object_id,
        related_id=related,
        customer_id=customer,
        amount=amount,
        status=str(status) if status else None,
        detail=detail,
    )
