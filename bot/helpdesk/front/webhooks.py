"""Front application webhooks: `X-Front-Signature`, the challenge, and inbound messages.

Front signs each application webhook request with the app's secret: `X-Front-Signature`
is the base64 HMAC-SHA256 of `X-Front-Request-Timestamp` (milliseconds), a colon, and the
raw body (dev.frontapp.com/docs/application-webhooks, "Verifying integrity"). A timestamp
further than the tolerance from now is refused as a replay (Front's connector security
page recommends five minutes). Saving the webhook in Front's developer settings sends a
signed `sync` request carrying `X-Front-Challenge`; the endpoint proves it holds the
secret by answering 200 with the challenge echoed back, `{"challenge": "<value>"}`.

Events arrive as `{"type", "authorization", "payload"}`, the payload being the full
event (`id` evt_…, our delivery ID; `conversation`; `target.data`, the message). A new
inbound message is `inbound_received`; its sender is the recipient with role `from`.
Every inbound message names its conversation: the pipeline's once-per-ticket key makes
the conversation's first one (or the first after installing) the one that gets the note.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.helpdesk.base import Delivery, Forged, NewTicket
from bot.helpdesk.payloads import email, json_object, member, plain_text, text
from bot.helpdesk.signatures import fresh, verify

SIGNATURE = "X-Front-Signature"
TIMESTAMP = "X-Front-Request-Timestamp"
CHALLENGE = "X-Front-Challenge"
NEW_MESSAGE = "inbound_received"


def read(
    body: bytes, headers: Mapping[str, str], app_secret: str | None, *, now: float, tolerance: float
) -> Delivery:
    """A verified request: the challenge answered, a `NewTicket` for an inbound message."""
    stamp = (headers.get(TIMESTAMP) or "").strip()
    if not stamp.isdigit():
        raise Forged(f"{TIMESTAMP} is missing or not a number")
    verify(headers.get(SIGNATURE), app_secret, stamp.encode() + b":" + body,
           algorithm="sha256", encoding="base64", what=SIGNATURE)  # fmt: skip
    fresh(int(stamp) / 1000, now, tolerance, what="request")
    challenge = headers.get(CHALLENGE)
    if challenge:
        return Delivery(answer={"challenge": challenge})
    envelope = json_object(body)
    event = envelope.get("payload")
    if envelope.get("type") != NEW_MESSAGE or not isinstance(event, dict):
        return Delivery()
    if member(event, "conversation", "id") is None:
        return Delivery()
    return Delivery(ticket=ticket(event))


def ticket(event: dict[str, Any]) -> NewTicket:
    message = member(event, "target", "data")
    message = message if isinstance(message, dict) else {}
    sender = next(
        (
            r
            for r in message.get("recipients") or []
            if isinstance(r, dict) and r.get("role") == "from"
        ),
        {},
    )
    return NewTicket(
        helpdesk="front",
        ticket_id=str(event["conversation"]["id"]),
        requester_email=email(sender.get("handle")),
        subject=text(member(event, "conversation", "subject")) or text(message.get("subject")),
        text=text(message.get("text")) or plain_text(text(message.get("body"))),
        delivery_id=str(event["id"]) if event.get("id") else None,
    )
