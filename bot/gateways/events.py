"""What gateways tell us on their own (webhooks), in one neutral shape."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.money import Money


class EventKind(StrEnum):
    refund = "refund"  # money went back (by us or outside the bot)
    capture = "capture"  # an authorization was captured
    dispute_created = "dispute_created"
    payment_failed = "payment_failed"
    payment_succeeded = "payment_succeeded"
    invoice_paid = "invoice_paid"
    subscription_canceled = "subscription_canceled"
    subscription_updated = "subscription_updated"
    other = "other"  # verified and recorded, nothing to do


class GatewayEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    gateway: str
    id: str  # the gateway's event ID: evt_..., WH-...
    kind: EventKind
    raw_type: str  # charge.refunded, PAYMENT.CAPTURE.REFUNDED, ...
    created: datetime
    object_id: str  # the refund, charge, dispute, invoice or subscription the event is about
    related_id: str | None = None  # e.g. the charge a refund or dispute belongs to
    customer_id: str | None = None
    amount: Money | None = None
    status: str | None = None  # the object's status as of this event
    idempotency_key: str | None = (
        None  # the key of the request that caused it, when the gateway says
    )
    detail: dict[str, Any] = Field(default_factory=dict)
