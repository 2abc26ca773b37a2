"""Freshdesk's webhook from our ticket-creation automation rule: a shared secret, then the body.

Freshdesk signs nothing: the rule's "Trigger webhook" action sends a custom header we
choose (`webhook_header`, `X-ChargeDesk-Secret` by default) holding `webhook_secret`,
compared in constant time. Nothing in the request is stamped by Freshdesk, so a replay
cannot be told by its age: it names a ticket already recorded and changes nothing
(the billing note is unique by ticket: topic `billing` of `helpdesk_notes`). The rule's JSON content (README: Freshdesk):

    {"event": "ticket.created",
     "ticket": {"id": "{{ticket.id}}", "subject": "{{ticket.subject}}",
                "description": "{{ticket.description}}",
                "requester_email": "{{ticket.requester.email}}"}}

`{{ticket.description}}` is HTML; it is read as the plain text a person sees.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from bot.helpdesk import payloads
from bot.helpdesk.base import Delivery, Forged, NewTicket

NAME = "freshdesk"


def read(body: bytes, headers: Mapping[str, str], *, header: str, secret: str | None) -> Delivery:
    if not secret:
        raise Forged("no secret is configured to check the delivery")
    given = headers.get(header)
    if not given:
        raise Forged(f"the {header} header is missing")
    if not hmac.compare_digest(given.strip().encode(), secret.encode()):
        raise Forged(f"the {header} header does not match")
    return Delivery(ticket=ticket(body))


def ticket(body: bytes) -> NewTicket | None:
    """The new ticket the rule's body describes; None for any other (genuine) body."""
    data = payloads.member(payloads.json_object(body), "ticket")
    ticket_id = payloads.member(data, "id")
    if isinstance(ticket_id, int) and not isinstance(ticket_id, bool):
        ticket_id = str(ticket_id)
    if not isinstance(ticket_id, str) or not ticket_id.strip().isdigit():
        return None
    return NewTicket(
        helpdesk=NAME,
        ticket_id=ticket_id.strip(),
        requester_email=payloads.email(payloads.member(data, "requester_email")),
        subject=payloads.text(payloads.member(data, "subject")),
        text=payloads.plain_text(payloads.text(payloads.member(data, "description"))),
    )
