"""Secrets in emails (billing links, one-time codes) are made at send time, never stored.

A queued message names each secret by a placeholder (`{{chargedesk:link:<grant>}}`,
`{{chargedesk:code:<code id>}}`); `render` replaces them with the link or code
just before the message is handed over. Both are computed from their row and the
deployment's key (`bot/keys.py`), so every retry sends the same bytes, and the
`emails` table holds nothing that opens a billing page or proves a mailbox.

A placeholder is only filled in for the row's own recipient: text that reached a
message from elsewhere (a customer name that looks like a placeholder) can at
most reveal the recipient's own link.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from bot.billing_links import url
from bot.keys import code_for
from bot.mail.transport import PermanentFailure
from bot.store.tables import PaymentRequestRow, PortalGrant, VerificationCode

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

PREFIX = "{{chargedesk:"
_PLACEHOLDER = re.compile(rb"\{\{chargedesk:(link|code|pay):([A-Za-z0-9_-]{1,40})\}\}")


def link(grant_id: str) -> str:
    """Where the billing link of `grant_id` goes in a message."""
    return f"{PREFIX}link:{grant_id}}}}}"


def code(code_id: str) -> str:
    """Where the one-time code of `code_id` goes in a message."""
    return f"{PREFIX}code:{code_id}}}}}"


def pay(request_id: str) -> str:
    """Where the pay link of payment request `request_id` goes: asked of its gateway at send
    time, and only while the request is open (a paid or cancelled one sends nothing)."""
    return f"{PREFIX}pay:{request_id}}}}}"


async def _pay_link(services: Services, request_id: str, to: str) -> str | None:
    async with services.db.read() as session:
        row = await session.get(PaymentRequestRow, request_id)
    if row is None or row.email != to:
        return None
    if row.state != "open":
        raise PermanentFailure(f"payment request {request_id} is {row.state}: not sent")
    link = await services.gateways.get(row.gateway).get_pay_link(row.link_id)
    if link.url is None:  # expired: the reminder job makes a new link first
        raise PermanentFailure(f"payment request {request_id}: its pay link is {link.status}")
    return link.url


async def render(services: Services, message: bytes, recipient: str) -> bytes:
    """`message` with its placeholders replaced by the secrets they name, for `recipient`."""
    wanted = {(kind.decode(), ref.decode()) for kind, ref in _PLACEHOLDER.findall(message)}
    if not wanted:
        return message
    to = recipient.strip().lower()
    made: dict[bytes, bytes] = {}
    for kind, ref in sorted(wanted):
        pay_url = await _pay_link(services, ref, to) if kind == "pay" else None
        if pay_url is not None:
            made[pay(ref).encode()] = pay_url.encode()
        elif kind == "pay":
            log.warning("email to a recipient not named by pay %s: left unfilled", ref)
    async with services.db.read() as session:
        for kind, ref in sorted(wanted):
            if kind == "pay":
                continue
            if kind == "link":
                grant = await session.get(PortalGrant, ref)
                if grant is not None and grant.email == to:
                    made[link(ref).encode()] = url(services, grant.id, grant.expires_at).encode()
                    continue
            else:
                row = await session.get(VerificationCode, ref)
                if row is not None and row.email == to:
                    made[code(ref).encode()] = code_for(services, row.id).encode()
                    continue
            log.warning("email to a recipient not named by %s %s: left unfilled", kind, ref)
    return _PLACEHOLDER.sub(lambda m: made.get(m.group(0), m.group(0)), message)
