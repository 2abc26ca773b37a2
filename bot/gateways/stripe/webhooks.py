"""Stripe webhooks: the signature checked by the SDK, then the event in our words.

A delivery is accepted only with a valid `Stripe-Signature` within the tolerance;
its event becomes one GatewayEvent, whose amounts follow Stripe's currency rules.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import stripe

from bot.gateways.base import GatewayError, WebhookRejected
from bot.gateways.events import EventKind, GatewayEvent
from bot.gateways.stripe.client import header
from bot.gateways.stripe.mapping import (
    NAME,
    expandable_id,
    from_stripe_amount,
    parse_charge,
    stripe_time,
)
from bot.money import Money, MoneyError

_EVENT_KINDS = {
    "charge.refunded": EventKind.refund,
    "charge.refund.updated": EventKind.refund,
    "refund.created": EventKind.refund,
    "refund.updated": EventKind.refund,
    "charge.captured": EventKind.capture,
    "charge.dispute.created": EventKind.dispute_created,
    "charge.failed": EventKind.payment_failed,
    "payment_intent.payment_failed": EventKind.payment_failed,
    "invoice.payment_failed": EventKind.payment_failed,
    "charge.succeeded": EventKind.payment_succeeded,
    "payment_intent.succeeded": EventKind.payment_succeeded,
    "invoice.paid": EventKind.invoice_paid,
    "customer.subscription.deleted": EventKind.subscription_canceled,
    "customer.subscription.updated": EventKind.subscription_updated,
}


def verify_and_parse(
    body: bytes, headers: Mapping[str, str], secret: str | None, tolerance: int
) -> list[GatewayEvent]:
    """The events of a genuine delivery; WebhookRejected for anything else."""
    if secret is None:
        raise WebhookRejected(NAME, "no Stripe webhook secret is configured")
    try:
        stripe.Webhook.construct_event(
            body, header(headers, "Stripe-Signature"), secret, tolerance=tolerance
        )
    except stripe.SignatureVerificationError as exc:
        raise WebhookRejected(NAME, f"Stripe signature rejected: {exc.user_message}") from None
    except ValueError:
        raise WebhookRejected(NAME, "the Stripe delivery is not a JSON event") from None
    event = json.loads(body)
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        raise WebhookRejected(NAME, "the Stripe delivery is not an event")
    return [parse_event(event)]


def _event_money(value: Any, currency: Any) -> Money | None:
    if not isinstance(value, int) or not isinstance(currency, str):
        return None
    try:
        return from_stripe_amount(value, currency)
    except (MoneyError, GatewayError):
        return None


def parse_event(event: Mapping[str, Any]) -> GatewayEvent:
    """A verified Stripe event as one GatewayEvent (pure: no request is made)."""
    raw_type = str(event.get("type") or "")
    kind = _EVENT_KINDS.get(raw_type, EventKind.other)
    obj = event["data"].get("object") or {}
    object_type = obj.get("object")
    currency = obj.get("currency")
    object_id = obj.get("id") or event["id"]
    related_id: str | None = None
    amount: Money | None = None
    status = obj.get("status")
    detail: dict[str, Any] = {"livemode": bool(event.get("livemode"))}
    if object_type == "charge":
        related_id = expandable_id(obj.get("payment_intent"))
        # An odd currency must not lose the event: Stripe's own status stays then.
        with contextlib.suppress(MoneyError, GatewayError, KeyError):
            status = parse_charge(obj).status.value
        amount = _event_money(obj.get("amount_captured") or obj.get("amount"), currency)
        if kind == EventKind.refund:
            related_id = obj["id"]
            # Since API 2022-11-15 the charge comes without its refunds: then only
            # refund.created names the refund, and this event gives the running total.
            refunds = (obj.get("refunds") or {}).get("data") or []
            latest = max(refunds, key=lambda r: r.get("created") or 0, default=None)
            amount = None
            if latest is not None:
                object_id = latest["id"]
                amount = _event_money(latest.get("amount"), currency)
            detail["amount_refunded"] = _event_money(obj.get("amount_refunded"), currency)
        if obj.get("failure_message"):
            detail["failure_message"] = obj["failure_message"]
    elif object_type == "refund":
        related_id = expandable_id(obj.get("charge"))
        amount = _event_money(obj.get("amount"), currency)
    elif object_type == "dispute":
        related_id = expandable_id(obj.get("charge"))
        amount = _event_money(obj.get("amount"), currency)
        detail["reason"] = obj.get("reason")
        due = stripe_time((obj.get("evidence_details") or {}).get("due_by"))
        if due is not None:
            detail["evidence_due_by"] = f"{due:%Y-%m-%d %H:%M} UTC"
    elif object_type == "payment_intent":
        related_id = expandable_id(obj.get("latest_charge"))
        received = obj.get("amount_received")
        amount = _event_money(received if received else obj.get("amount"), currency)
        error = obj.get("last_payment_error")
        if isinstance(error, dict) and error.get("message"):
            detail["failure_message"] = error["message"]
    elif object_type == "invoice":
        parent = obj.get("parent") or {}
        related_id = expandable_id(obj.get("subscription")) or expandable_id(
            (parent.get("subscription_details") or {}).get("subscription")
        )
        paid = kind == EventKind.invoice_paid
        amount = _event_money(obj.get("amount_paid" if paid else "amount_due"), currency)
    elif object_type == "checkout.session":
        related_id = expandable_id(obj.get("payment_intent"))
        amount = _event_money(obj.get("amount_total"), currency)
        detail["payment_status"] = obj.get("payment_status")
    if object_type in ("checkout.session", "payment_intent"):
        # Ours when we made it for a payment request (bot/gateways/stripe/payments.py).
        request_ref = (obj.get("metadata") or {}).get("chargedesk_payment_request")
        if request_ref:
            detail["payment_request"] = request_ref
    request = event.get("request")
    created = stripe_time(event.get("created")) or datetime.now(UTC)
    return GatewayEvent(
        gateway=NAME,
        id=str(event.get("id") or ""),
        kind=kind,
        raw_type=raw_type,
        created=created,
        object_id=str(object_id),
        related_id=related_id,
        customer_id=obj.get("id")
        if object_type == "customer"
        else expandable_id(obj.get("customer")),
        amount=amount,
        status=status,
        idempotency_key=request.get("idempotency_key") if isinstance(request, dict) else None,
        detail=detail,
    )
