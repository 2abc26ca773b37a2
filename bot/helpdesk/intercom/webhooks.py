"""Intercom webhooks: `X-Hub-Signature`, and the conversation a contact opened.

Intercom signs each notification with the app's client secret: `X-Hub-Signature` is
`sha1=` followed by the hex HMAC-SHA1 of the raw body (developers.intercom.com/docs/webhooks,
"Signed notifications"). The body is a `notification_event` envelope: `id` (notif_…,
our delivery ID), `topic`, `created_at` (Unix seconds) and `data.item`, the Intercom
object; for `conversation.user.created` that is the conversation, whose `source` is the
first message (`subject`, HTML `body`, `author` with the contact's `email`).

The signature covers `created_at`, so a notification older than the tolerance is refused
as a replay; a notification without it is judged by its signature alone (the pipeline's
once-per-ticket key absorbs replays of those).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.helpdesk.base import Delivery, NewTicket
from bot.helpdesk.payloads import email, json_object, member, plain_text, text
from bot.helpdesk.signatures import fresh, verify

SIGNATURE = "X-Hub-Signature"
NEW_CONVERSATION = "conversation.user.created"
CONTACT_TYPES = frozenset({"user", "lead", "contact"})


def read(
    body: bytes,
    headers: Mapping[str, str],
    client_secret: str | None,
    *,
    now: float,
    tolerance: float,
) -> Delivery:
    """A verified notification: a `NewTicket` for a contact's new conversation, else nothing."""
    verify(headers.get(SIGNATURE), client_secret, body, algorithm="sha1", encoding="hex",
           prefix="sha1=", what=SIGNATURE)  # fmt: skip
    notification = json_object(body)
    created_at = notification.get("created_at")
    if isinstance(created_at, int | float) and not isinstance(created_at, bool) and created_at:
        fresh(float(created_at), now, tolerance, what="notification")
    conversation = member(notification, "data", "item")
    if notification.get("topic") != NEW_CONVERSATION or not isinstance(conversation, dict):
        return Delivery()
    if conversation.get("id") is None:
        return Delivery()
    return Delivery(ticket=ticket(conversation, notification.get("id")))


def ticket(conversation: dict[str, Any], delivery_id: Any) -> NewTicket:
    source = conversation.get("source") if isinstance(conversation.get("source"), dict) else {}
    author = source.get("author") if isinstance(source.get("author"), dict) else {}
    requester = email(author.get("email")) if author.get("type") in CONTACT_TYPES else None
    if requester is None:
        contacts = member(conversation, "contacts", "contacts") or []
        requester = next(
            (
                email(c.get("email"))
                for c in contacts
                if isinstance(c, dict) and email(c.get("email"))
            ),
            None,
        )
    return NewTicket(
        helpdesk="intercom",
        ticket_id=str(conversation["id"]),
        requester_email=requester,
        subject=plain_text(text(source.get("subject"))),
        text=plain_text(text(source.get("body"))),
        delivery_id=str(delivery_id) if delivery_id else None,
    )
