"""Braintree webhooks: verified as the SDK does it, then each notification in our words.

Braintree POSTs two form fields: `bt_payload` (the notification's XML, base64) and
`bt_signature` (`public_key|hex HMAC-SHA1` keyed with SHA-1 of the private key,
over the payload with or without its trailing newline). The SDK's own parser
checks it. The signature carries no time: the notification's own (signed)
timestamp must be within the tolerance, which is longer than Braintree's 24 hours
of hourly retries so a delivery that waited for us is still taken. Notifications
carry no ID either: kind, subject and timestamp name one, the same on every retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from bot.gateways.base import WebhookRejected
from bot.gateways.braintree.client import BraintreeAPI
from bot.gateways.braintree.mapping import (
    NAME,
    as_utc,
    customer_id_of,
    field,
    is_refund,
    key_of_order,
    money_from_braintree,
)
from bot.gateways.events import EventKind, GatewayEvent
from bot.money import Money, MoneyError

# Braintree's clock against ours: a notification from the future beyond this is refused.
CLOCK_SKEW = timedelta(minutes=5)
_FIELDS = ("bt_signature", "bt_payload")


def form_fields(body: bytes) -> tuple[str, str]:
    """`bt_signature` and `bt_payload` from a form-encoded body, each exactly once."""
    try:
        text = body.decode("ascii")
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError):
        raise WebhookRejected(
            NAME, "delivery is not a form of bt_signature and bt_payload"
        ) from None
    missing = [name for name in _FIELDS if not fields.get(name)]
    if missing:
        raise WebhookRejected(NAME, f"delivery without {', '.join(missing)}: not from Braintree")
    if any(len(fields[name]) != 1 for name in _FIELDS):
        raise WebhookRejected(NAME, "delivery repeats bt_signature or bt_payload")
    return fields["bt_signature"][0], fields["bt_payload"][0]


async def verify_and_parse(
    api: BraintreeAPI, tolerance_seconds: int, body: bytes, headers: Mapping[str, str]
) -> list[GatewayEvent]:
    """The event of a genuine, fresh delivery; WebhookRejected for anything else."""
    signature, payload = form_fields(body)
    notification = await api.notification(signature, payload)
    sent = as_utc(field(notification, "timestamp"))
    if sent is None:
        raise WebhookRejected(NAME, "notification without a timestamp")
    age = datetime.now(UTC) - sent
    if age > timedelta(seconds=tolerance_seconds) or -age > CLOCK_SKEW:
        raise WebhookRejected(
            NAME,
            f"stale notification: sent {sent.isoformat()}, outside the "
            f"{tolerance_seconds // 3600} h Braintree keeps retrying",
        )
    return [parse_notification(notification)]


# --- notifications -------------------------------------------------------------------------

_SUBSCRIPTION_KINDS = {
    "subscription_canceled": EventKind.subscription_canceled,
    "subscription_expired": EventKind.subscription_canceled,
    "subscription_charged_successfully": EventKind.payment_succeeded,
    "subscription_charged_unsuccessfully": EventKind.payment_failed,
}


def _amount(obj: Any, name: str = "amount") -> Money | None:
    value, currency = field(obj, name), field(obj, "currency_iso_code")
    if value is None or not currency:
        return None
    try:
        return money_from_braintree(value, str(currency))
    except MoneyError:
        return None


def _transaction_event(kind: str, transaction: Any) -> dict[str, Any]:
    status = field(transaction, "status")
    if is_refund(transaction):
        # A refund of a bank payment (ACH, SEPA): Braintree says when it settles.
        event = EventKind.refund if kind == "transaction_settled" else EventKind.other
        return {
            "kind": event,
            "object_id": str(transaction.id),
            "related_id": field(transaction, "refunded_transaction_id"),
            "idempotency_key": key_of_order(field(transaction, "order_id")),
        }
    event = {
        "transaction_settled": EventKind.payment_succeeded,
        "transaction_settlement_declined": EventKind.payment_failed,
    }.get(kind, EventKind.other)
    detail = {}
    if event == EventKind.payment_failed and status:
        detail["reason"] = str(status).replace("_", " ")
    return {"kind": event, "object_id": str(transaction.id), "detail": detail}


def _subscription_event(kind: str, subscription: Any) -> dict[str, Any]:
    event = _SUBSCRIPTION_KINDS.get(kind, EventKind.subscription_updated)
    payments = field(subscription, "transactions") or []
    latest = payments[0] if payments else None
    if event in (EventKind.payment_succeeded, EventKind.payment_failed) and latest is not None:
        # A subscription's payment: the event is about that payment (its receipt, its alert).
        return {
            "kind": event,
            "object_id": str(latest.id),
            "related_id": str(subscription.id),
            "customer_id": customer_id_of(latest),
            "amount": _amount(latest),
            "status": field(latest, "status"),
        }
    if event in (EventKind.payment_succeeded, EventKind.payment_failed):
        event = EventKind.subscription_updated
    return {"kind": event, "object_id": str(subscription.id)}


def _dispute_event(kind: str, dispute: Any) -> dict[str, Any]:
    disputed = field(dispute, "transaction_details")
    detail = {"reason": str(field(dispute, "reason") or "unknown")}
    return {
        "kind": EventKind.dispute_created if kind == "dispute_opened" else EventKind.other,
        "object_id": str(dispute.id),
        "related_id": field(disputed, "id"),
        "amount": _amount(dispute, "amount_disputed") or _amount(dispute),
        "detail": detail,
    }


def parse_notification(notification: Any) -> GatewayEvent:
    """A verified notification as one GatewayEvent (pure: no request is made)."""
    kind = str(field(notification, "kind") or "unknown")
    created = as_utc(field(notification, "timestamp")) or datetime.now(UTC)
    subject: Any = None
    values: dict[str, Any] = {"kind": EventKind.other, "object_id": kind}
    if (transaction := field(notification, "transaction")) is not None:
        subject = transaction
        values = _transaction_event(kind, transaction)
        values.setdefault("customer_id", customer_id_of(transaction))
        values.setdefault("amount", _amount(transaction))
    elif (subscription := field(notification, "subscription")) is not None:
        subject = subscription
        values = _subscription_event(kind, subscription)
    elif (dispute := field(notification, "dispute")) is not None:
        subject = dispute
        values = _dispute_event(kind, dispute)
    values.setdefault("status", field(subject, "status"))
    object_id = values.pop("object_id")
    stamp = created.strftime("%Y%m%dT%H%M%SZ")
    status = values.pop("status")
    related = values.pop("related_id", None)
    return GatewayEvent(
        gateway=NAME,
        # Braintree gives a notification no ID: these three are the same on every retry.
        id=f"{kind}:{object_id}:{stamp}",
        raw_type=kind,
        created=created,
        object_id=object_id,
        related_id=str(related) if related else None,
        status=str(status) if status is not None else None,
        **values,
    )
