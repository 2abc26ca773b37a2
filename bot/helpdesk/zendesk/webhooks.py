"""Zendesk's webhook from our new-ticket trigger: verified by Zendesk's signing scheme, then read.

Zendesk signs every webhook request: `X-Zendesk-Webhook-Signature` is the base64
HMAC-SHA256 of `X-Zendesk-Webhook-Signature-Timestamp` (ISO 8601, `2026-12-07T12:00:00Z`)
followed by the raw body, keyed with the webhook's signing secret. A delivery without
both headers, with another signature, or stamped more than `webhook_tolerance` seconds
from now is `Forged`. A replay inside the tolerance names a ticket already recorded and
changes nothing (the billing note is unique by ticket: topic `billing` of `helpdesk_notes`).

The body is what our trigger's JSON body says (README: Zendesk):

    {"event": "ticket.created",
     "ticket": {"id": "{{ticket.id}}", "subject": "{{ticket.title}}",
                "description": "{{ticket.description}}",
                "requester_email": "{{ticket.requester.email}}"}}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from bot.helpdesk import payloads, signatures
from bot.helpdesk.base import Delivery, Forged, NewTicket

NAME = "zendesk"
SIGNATURE = "X-Zendesk-Webhook-Signature"
TIMESTAMP = "X-Zendesk-Webhook-Signature-Timestamp"
INVOCATION = "X-Zendesk-Webhook-Invocation-Id"


def read(
    body: bytes, headers: Mapping[str, str], *, secret: str | None, tolerance: float, now: float
) -> Delivery:
    stamp = headers.get(TIMESTAMP)
    if not stamp:
        raise Forged("the signature timestamp is missing")
    signatures.verify(
        headers.get(SIGNATURE), secret, stamp.encode() + body,
        algorithm="sha256", encoding="base64",
    )  # fmt: skip
    signatures.fresh(_seconds(stamp), now, tolerance)
    return Delivery(ticket=ticket(body, delivery_id=headers.get(INVOCATION)))


def _seconds(stamp: str) -> float:
    try:
        moment = datetime.fromisoformat(stamp.strip())
    except ValueError:
        raise Forged("the signature timestamp is not a time") from None
    if moment.tzinfo is None:
        raise Forged("the signature timestamp has no time zone")
    return moment.timestamp()


def ticket(body: bytes, *, delivery_id: str | None = None) -> NewTicket | None:
    """The new ticket our trigger's body describes; None for any other (genuine) body."""
    payload = payloads.json_object(body)
    data = payloads.member(payload, "ticket")
    ticket_id = payloads.member(data, "id")
    if isinstance(ticket_id, int) and not isinstance(ticket_id, bool):
        ticket_id = str(ticket_id)
    if not isinstance(ticket_id, str) or not ticket_id.strip().isdigit():
        return None  # a test delivery from Admin Center, or another trigger's body
    return NewTicket(
        helpdesk=NAME,
        ticket_id=ticket_id.strip(),
        requester_email=payloads.email(payloads.member(data, "requester_email")),
        subject=payloads.text(payloads.member(data, "subject")),
        text=payloads.text(payloads.member(data, "description")),
        delivery_id=delivery_id,
    )
