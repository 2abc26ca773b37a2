"""Help Scout webhooks: `X-HelpScout-Signature`, and the new conversation they announce.

Help Scout signs each delivery with the webhook's secret key: `X-HelpScout-Signature`
is the base64 HMAC-SHA1 of the raw body (developer.helpscout.com/webhooks/). The event
is named in `X-HelpScout-Event`; for `convo.created` the body is the conversation
(Mailbox API 2.0 object: `id`, `subject`, `primaryCustomer`, `_embedded.threads`).

Help Scout signs no timestamp and sends no delivery ID, so a captured delivery could be
sent again at any time. That is harmless here: a replayed `convo.created` names a
conversation that already has its note, and the pipeline keys billing notes once per ticket
(`helpscout`, conversation ID), so it posts nothing. The event header is not signed
either: a signed body replayed under another event name still only describes its own
conversation, and gets at most that conversation's one note.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.helpdesk.base import Delivery, NewTicket
from bot.helpdesk.payloads import email, json_object, member, plain_text, text
from bot.helpdesk.signatures import verify

SIGNATURE = "X-HelpScout-Signature"
EVENT = "X-HelpScout-Event"
NEW_CONVERSATION = "convo.created"


def check_signature(body: bytes, headers: Mapping[str, str], secret_key: str | None) -> None:
    """Raise `Forged` unless the body carries Help Scout's signature with our secret key."""
    verify(headers.get(SIGNATURE), secret_key, body, algorithm="sha1", encoding="base64",
           what=SIGNATURE)  # fmt: skip


def read(body: bytes, headers: Mapping[str, str], secret_key: str | None) -> Delivery:
    """A verified delivery: a `NewTicket` for `convo.created`, nothing for other events."""
    check_signature(body, headers, secret_key)
    if headers.get(EVENT) != NEW_CONVERSATION:
        return Delivery()
    conversation = json_object(body)
    if conversation.get("id") is None:
        return Delivery()
    return Delivery(ticket=ticket(conversation))


def ticket(conversation: dict[str, Any]) -> NewTicket:
    threads = member(conversation, "_embedded", "threads") or []
    first = next(
        (t for t in reversed(threads) if isinstance(t, dict) and t.get("type") == "customer"),
        None,
    )
    requester = email(member(conversation, "primaryCustomer", "email"))
    if requester is None and member(conversation, "createdBy", "type") == "customer":
        requester = email(member(conversation, "createdBy", "email"))
    body = plain_text(text(first.get("body"))) if first else ""
    return NewTicket(
        helpdesk="helpscout",
        ticket_id=str(conversation["id"]),
        requester_email=requester,
        subject=text(conversation.get("subject")),
        text=body or text(conversation.get("preview")),
    )
