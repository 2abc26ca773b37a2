"""Recurly webhooks: the `recurly-signature` check, then the notification in our words.

Recurly signs JSON notifications only (XML ones carry no signature, so they are
refused): `recurly-signature: <ms timestamp>,<sig>[,<sig>...]`, each sig the hex
HMAC-SHA256 of `<timestamp>.<body>` with one of the endpoint's secrets (two while a
secret is being rotated). A delivery is accepted when one sig matches ours and the
timestamp is within the tolerance (five minutes) either way.

A JSON notification names an object and what happened to it (`object_type`,
`event_type`, `id`), nothing more: the gateway reads the object (`to_read`) and
`parse_event` builds the event from both. Recurly sends no event ID; one is made of
the object, the event and its time, so a redelivery is the same event; a refund's is
its refund transaction's ID, so each refund is one event however it was announced.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.gateways.base import WebhookRejected
from bot.gateways.events import EventKind, GatewayEvent
from bot.gateways.recurly.mapping import (
    NAME,
    Json,
    mini_id,
    money_from_recurly,
    recurly_time,
)
from bot.money import Money, MoneyError

HEADER = "recurly-signature"
MAX_SIGNATURES = 8  # a rotation sends two; more is not Recurly
_ID_LIMIT = 128  # processed_events.event_id

_KINDS: dict[tuple[str, str], EventKind] = {
    ("payment", "succeeded"): EventKind.payment_succeeded,
    ("payment", "failed"): EventKind.payment_failed,
    ("payment", "refunded"): EventKind.refund,
    ("charge_invoice", "paid"): EventKind.invoice_paid,
    ("charge_invoice", "past_due"): EventKind.payment_failed,
    ("charge_invoice", "failed"): EventKind.payment_failed,
    ("subscription", "expired"): EventKind.subscription_canceled,
}
# What each kind of notification needs read from the API to mean anything.
_READS = {"payment": "transaction", "charge_invoice": "invoice", "subscription": "subscription"}


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str | None,
    tolerance: int,
    *,
    now: float | None = None,
) -> Json:
    """The notification of a genuine, fresh delivery; WebhookRejected for anything else."""
    if not secret:
        raise WebhookRejected(
            NAME, "recurly.webhook_secret is not configured: deliveries cannot be verified"
        )
    lowered = {k.lower(): v for k, v in headers.items()}
    header = lowered.get(HEADER, "").strip()
    if not header:
        if body.lstrip().startswith(b"<"):
            raise WebhookRejected(
                NAME,
                "an XML notification: Recurly signs only JSON ones, so set the endpoint's "
                "format to JSON in Recurly (Integrations → Webhooks)",
            )
        raise WebhookRejected(NAME, f"delivery without {HEADER}: not from Recurly")
    stamp, *signatures = [part.strip() for part in header.split(",")]
    if not stamp.isdigit() or not signatures or len(signatures) > MAX_SIGNATURES:
        raise WebhookRejected(NAME, f"malformed {HEADER} header")
    sent = int(stamp) / 1000
    age = (time.time() if now is None else now) - sent
    if abs(age) > tolerance:
        when = datetime.fromtimestamp(sent, UTC).isoformat(timespec="seconds")
        raise WebhookRejected(
            NAME,
            f"stale delivery: signed {when}, more than {tolerance} seconds from now",
        )
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, s.lower()) for s in signatures):
        raise WebhookRejected(NAME, "Recurly signature does not match: forged or altered")
    try:
        notification = json.loads(body)
    except ValueError:
        raise WebhookRejected(NAME, "the delivery is not JSON") from None
    if not isinstance(notification, dict) or not all(
        isinstance(notification.get(k), str) and notification.get(k)
        for k in ("object_type", "event_type", "id")
    ):
        raise WebhookRejected(NAME, "the delivery is not a Recurly notification")
    return notification


def to_read(notification: Mapping[str, Any]) -> tuple[str, str] | None:
    """(`transaction`|`invoice`|`subscription`, ID) the event needs read, or None."""
    what = _READS.get(str(notification["object_type"]))
    return (what, str(notification["id"])) if what else None


def event_id(notification: Mapping[str, Any]) -> str:
    """Recurly sends no event ID: the object, what happened and when make one."""
    text = (
        f"{notification['object_type']}.{notification['event_type']}:"
        f"{notification['id']}@{notification.get('event_time') or ''}"
    )
    if len(text) <= _ID_LIMIT:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _money(obj: Mapping[str, Any], field: str) -> Money | None:
    if obj.get(field) is None or not obj.get("currency"):
        return None
    try:
        return money_from_recurly(obj[field], obj["currency"])
    except MoneyError:
        return None  # an odd amount must not lose the event


def parse_event(notification: Mapping[str, Any], obj: Mapping[str, Any] | None) -> GatewayEvent:
    """A verified notification, with the object it names as read from the API, as our event.

    For a refund, `obj` is the refund transaction; for other payments, the payment.
    """
    object_type = str(notification["object_type"])
    event_type = str(notification["event_type"])
    raw_type = f"{object_type}.{event_type}"[:80]
    kind = _KINDS.get((object_type, event_type))
    if kind is None:
        kind = EventKind.subscription_updated if object_type == "subscription" else EventKind.other
    object_id = str(notification["id"])
    related = customer = status = None
    amount: Money | None = None
    detail: dict[str, Any] = {}
    event = event_id(notification)
    if kind == EventKind.refund and not (obj and obj.get("type") == "refund"):
        # A refund notification must lead to a refund transaction, or it says nothing.
        kind = EventKind.other
        detail["note"] = "no refund transaction found for it at Recurly"
    if kind == EventKind.refund and obj:
        # One event per refund, however Recurly named it: each is processed once.
        event = f"payment.refunded:{obj.get('id')}"
    if obj:
        object_id = str(obj.get("id") or object_id)
        customer = mini_id(obj.get("account"))
        status = obj.get("status") or obj.get("state")
        if object_type == "payment":
            amount = _money(obj, "amount")
            related = (
                obj.get("original_transaction_id")
                if obj.get("type") == "refund"
                else mini_id(obj.get("invoice"))
            )
            if obj.get("status_message") and kind == EventKind.payment_failed:
                detail["failure_message"] = obj["status_message"]
        elif object_type == "charge_invoice":
            paid = kind == EventKind.invoice_paid
            amount = _money(obj, "paid" if paid else "balance")
            payments = [t for t in obj.get("transactions") or [] if t.get("status") == "success"]
            related = str(payments[0]["id"]) if payments else None
            if obj.get("number"):
                detail["invoice_number"] = obj["number"]
        elif object_type == "subscription":
            amount = _money(obj, "subtotal")
    elif kind != EventKind.other:
        detail["note"] = "the object was not found at Recurly"
    return GatewayEvent(
        gateway=NAME,
        id=event,
        kind=kind,
        raw_type=raw_type,
        created=recurly_time(notification.get("event_time")) or datetime.now(UTC),
        object_id=object_id[:128],
        related_id=str(related) if related else None,
        customer_id=customer,
        amount=amount,
        status=str(status)[:40] if status else None,
        detail=detail,
    )
