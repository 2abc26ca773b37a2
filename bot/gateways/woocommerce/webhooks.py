"""WooCommerce webhooks: `X-WC-Webhook-Signature` checked, then the delivery in our words.

WooCommerce signs each delivery with base64(HMAC-SHA256(secret, body)) and nothing else:
no timestamp is signed. A delivery is therefore refused as stale when the resource it
carries was last modified longer ago than the tolerance (WooCommerce builds the payload
when it delivers, so a genuine one is fresh), and replays are harmless by construction:
each refund, payment and cancellation becomes an event whose ID names that fact (`refund-726`,
`order-727-paid`), so seeing it again, in this delivery or any later one, is a duplicate.

The ping WooCommerce sends when a webhook is saved (a form body `webhook_id=<n>`, unsigned)
is answered without events: the store shows an error for anything but 200.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.gateways.base import WebhookRejected
from bot.gateways.events import EventKind, GatewayEvent
from bot.gateways.woocommerce.mapping import (
    NAME,
    Json,
    customer_ref,
    is_paid,
    marker_in,
    money,
    owner_of,
    wc_time,
)
from bot.money import Money, MoneyError

_PING = re.compile(rb"webhook_id=\d{1,20}")
_ENDED = ("cancelled", "expired")


def verify_and_parse(
    body: bytes,
    headers: Mapping[str, str],
    secret: str | None,
    tolerance: int,
    now: datetime | None = None,
) -> list[GatewayEvent]:
    """The events of a genuine, fresh delivery; WebhookRejected for anything else."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if _PING.fullmatch(body) and "x-wc-webhook-signature" not in lowered:
        return []
    if not secret:
        raise WebhookRejected(
            NAME, "woocommerce.webhook_secret is not configured: deliveries cannot be verified"
        )
    signature = lowered.get("x-wc-webhook-signature", "").strip()
    if not signature:
        raise WebhookRejected(NAME, "delivery without X-WC-Webhook-Signature: not from the store")
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise WebhookRejected(
            NAME, "X-WC-Webhook-Signature does not match the body: forged, or another secret"
        )
    try:
        payload = json.loads(body)
    except ValueError:
        raise WebhookRejected(NAME, "the delivery is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(NAME, "the delivery is not a WooCommerce resource")
    moment = now or datetime.now(UTC)
    modified = wc_time(payload.get("date_modified_gmt"))
    window = timedelta(seconds=tolerance)
    if modified is not None and (moment - modified > window or modified - moment > window):
        raise WebhookRejected(
            NAME,
            f"stale delivery: its {lowered.get('x-wc-webhook-resource', 'resource')} was last "
            f"modified {modified.isoformat()}, more than {tolerance // 3600} h from now",
        )
    delivery = lowered.get("x-wc-webhook-delivery-id") or hashlib.sha256(body).hexdigest()[:32]
    return parse_delivery(lowered.get("x-wc-webhook-topic", ""), payload, delivery, moment)


def _money(value: Any, currency: Any) -> Money | None:
    try:
        return money(value, str(currency or ""))
    except MoneyError:
        return None


def parse_delivery(topic: str, payload: Json, delivery: str, now: datetime) -> list[GatewayEvent]:
    """A verified delivery as events (pure: no request is made)."""
    resource, _, action = topic.partition(".")
    created = wc_time(payload.get("date_modified_gmt")) or now
    object_id = str(payload.get("id") or "")

    def event(event_id: str, kind: EventKind, **fields: Any) -> GatewayEvent:
        return GatewayEvent(
            gateway=NAME, id=event_id, kind=kind, raw_type=topic or "unknown", created=created,
            **{"object_id": object_id, **fields},
        )  # fmt: skip

    if resource == "order" and action != "deleted" and object_id:
        return _order_events(payload, event, delivery)
    if resource == "subscription" and action != "deleted" and object_id:
        status = str(payload.get("status") or "")
        customer = customer_ref(int(payload.get("customer_id") or 0))
        if status in _ENDED:
            kind, event_id = EventKind.subscription_canceled, f"subscription-{object_id}-{status}"
        elif status == "pending-cancel":
            kind, event_id = EventKind.subscription_updated, f"subscription-{object_id}-{status}"
        else:
            kind, event_id = EventKind.subscription_updated, f"delivery-{delivery}"
        return [event(event_id, kind, customer_id=customer, status=status)]
    return [event(f"delivery-{delivery}", EventKind.other)]


def _order_events(payload: Json, event: Any, delivery: str) -> list[GatewayEvent]:
    order_id = str(payload["id"])
    currency = payload.get("currency")
    customer = owner_of(payload)
    status = str(payload.get("status") or "")
    found: list[GatewayEvent] = [
        event(
            f"refund-{refund.get('id')}",
            EventKind.refund,
            object_id=str(refund.get("id")),
            related_id=order_id,
            customer_id=customer,
            amount=_money(refund.get("total"), currency),
            status="succeeded",
            # Our refunds say `Refund ref <key>` (a plain key such as an approval ID).
            idempotency_key=marker_in(refund.get("reason")),
        )
        for refund in payload.get("refunds") or []
        if isinstance(refund, dict) and refund.get("id")
    ]
    total = _money(payload.get("total"), currency)
    if is_paid(payload) and status in ("processing", "completed"):
        found.append(
            event(f"order-{order_id}-paid", EventKind.payment_succeeded, customer_id=customer, amount=total, status=status)
        )  # fmt: skip
    elif status == "failed":
        found.append(
            event(f"order-{order_id}-failed", EventKind.payment_failed, customer_id=customer, amount=total, status=status,
                  detail={"payment_method": payload.get("payment_method_title") or payload.get("payment_method")})
        )  # fmt: skip
    if not found:
        found.append(
            event(f"delivery-{delivery}", EventKind.other, customer_id=customer, status=status)
        )
    return found
