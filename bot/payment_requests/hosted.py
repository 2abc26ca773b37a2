"""Payment requests paid on our own billing pages: the ledger's pay links.

The ledger has no payment page of its own, so its pay link opens `/portal/request/<token>`,
where the token is a billing-page link token (`bot/billing_links.py`: the link's ID, its
expiry and an HMAC-SHA256 over both with the deployment's key), made from the link's row
and never stored. The page shows the amount and what it is for, and a Pay button.

Pressing Pay asks the gateway to record the payment (`Gateway.pay_own_page_link`: for the
ledger a charge, keyed by the request, so a double click or a replayed form records one),
then closes the request the way a gateway's webhook does: one event through
`bot/webhooks.process`, whose de-duplication and the listener's conditional update make
it paid once, audited once.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from bot.billing_links import LinkRefused, token
from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.events import EventKind, GatewayEvent
from bot.keys import signing_key
from bot.models import PayLinkStatus
from bot.payment_requests import OPEN, PAID, PaymentRequest, view_of
from bot.services import Services
from bot.settings import Settings
from bot.store.tables import PaymentRequestRow
from bot.webhooks import process

log = logging.getLogger(__name__)

PATH = "/portal/request/"
# Only links of our own pages have tokens: a billing-link grant (`pg_…`), signed with the
# same key, never opens a pay page, nor a pay token a billing page (no such grant).
LINK_PREFIX = "plink_"


def page_url(settings: Settings, link_id: str, expires: datetime) -> str:
    """The pay page of a link: a bearer secret, made from the link and the key when needed."""
    base = settings.portal.base_url.rstrip("/")
    return f"{base}{PATH}{token(signing_key(settings), link_id, expires)}"


def link_of(settings: Settings, value: str, *, now: datetime | None = None) -> str:
    """The link ID a page token names; LinkRefused `forged` (shape, prefix, signature) or
    `expired`, checked in that order."""
    parts = value.split(".")
    if len(parts) != 3 or not parts[0].startswith(LINK_PREFIX) or not parts[1].isdigit():
        raise LinkRefused("forged", "this pay link is not one of ours")
    stamp = int(parts[1])
    if stamp > 2**40:  # no datetime that far; and no signature of ours either
        raise LinkRefused("forged", "this pay link is not one of ours")
    expected = token(signing_key(settings), parts[0], datetime.fromtimestamp(stamp, UTC))
    if not hmac.compare_digest(expected, value):
        raise LinkRefused("forged", "this pay link is not one of ours")
    if stamp <= int((now or datetime.now(UTC)).timestamp()):
        raise LinkRefused("expired", "this pay link has expired")
    return parts[0]


@dataclass(frozen=True)
class PayPage:
    """What the page shows: the request, and whether it can be paid (`open`) or is `paid`,
    `cancelled` or `expired`."""

    request: PaymentRequest
    state: str


async def open_page(services: Services, value: str) -> PayPage:
    """The request a page token opens; LinkRefused for a forged or expired token, or one
    whose link is no longer the request's."""
    link_id = link_of(services.settings, value)
    async with services.db.read() as session:
        row = await session.scalar(
            select(PaymentRequestRow).where(PaymentRequestRow.link_id == link_id)
        )
    if row is None:
        raise LinkRefused("revoked", "this pay link opens no payment request")
    request = view_of(row)
    if request.state != OPEN:
        return PayPage(request, request.state)
    link = await services.gateways.get(request.gateway).get_pay_link(link_id)
    if link.status == PayLinkStatus.paid:  # paid, and the telling of it lost: tell it now
        await paid(services, request, link.charge_id or link.id)
        return PayPage(request, PAID)
    return PayPage(request, OPEN if link.status == PayLinkStatus.open else "expired")


async def pay(services: Services, page: PayPage) -> PayPage:
    """Pay an open request: the gateway records the payment once; the request closes paid."""
    request = page.request
    if page.state != OPEN:
        return page
    gateway = services.gateways.get(request.gateway)
    try:
        link = await gateway.pay_own_page_link(request.link_id)
    except GatewayError as exc:
        if exc.code != ErrorCode.invalid_state:
            raise
        # Cancelled or expired while the page was open (or paid by a click just before).
        log.info("payment request %s: not paid (%s)", request.id, exc.message)
        link = await gateway.get_pay_link(request.link_id)
    if link.status == PayLinkStatus.paid:
        await paid(services, request, link.charge_id or link.id)
    async with services.db.read() as session:
        row = await session.get(PaymentRequestRow, request.id)
    assert row is not None
    fresh = view_of(row)
    if fresh.state != OPEN:
        return PayPage(fresh, fresh.state)
    return PayPage(fresh, PAID if link.status == PayLinkStatus.paid else "expired")


async def paid(services: Services, request: PaymentRequest, charge_id: str) -> None:
    """Tell the core the request is paid as a gateway's webhook would: one event per link,
    so a second telling is a duplicate, and the listener closes the request once."""
    event = GatewayEvent(
        gateway=request.gateway, id=f"{request.link_id}:paid", kind=EventKind.payment_succeeded,
        raw_type="pay_link.paid", created=datetime.now(UTC), object_id=charge_id,
        customer_id=request.customer_id, amount=request.amount, status="succeeded",
        detail={"payment_request": request.id},
    )  # fmt: skip
    if await process(services, event) != "processed":
        return
    for listener in services.listeners:
        try:
            await listener.after_event(services, event)
        except Exception:  # the payment is recorded: a listener's follow-up must not undo that
            log.exception("listener %s failed after %s", type(listener).__name__, event.id)
