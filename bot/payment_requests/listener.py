"""A payment request is paid when its gateway says so: a verified webhook, recorded once.

The gateway's webhook parser names our request (`detail["payment_request"]`, from the
metadata we put on the Checkout Session and its PaymentIntent); the event is paid when it is
a payment that succeeded or a checkout whose `payment_status` is `paid`. A forged delivery
never gets here (its signature is refused first), a redelivery is a duplicate that
`bot/webhooks.py` does not pass on, and the request closes under a conditional update: at
most once, with one audit entry.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.gateways.events import EventKind, GatewayEvent
from bot.payment_requests import PAID, close
from bot.services import Listener, Services
from bot.store.tables import PaymentRequestRow
from bot.webhooks import gateway_actor

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)


def is_paid(event: GatewayEvent) -> bool:
    return event.kind == EventKind.payment_succeeded or event.detail.get("payment_status") == "paid"


class PaymentRequestListener(Listener):
    async def record_event(
        self, services: Services, session: AsyncSession, event: GatewayEvent
    ) -> None:
        request_id = event.detail.get("payment_request")
        if not isinstance(request_id, str) or not is_paid(event):
            return
        row = await session.get(PaymentRequestRow, request_id)
        if row is None or row.gateway != event.gateway:
            return
        paid = event.amount
        if paid is not None and (paid.minor, paid.currency) != (row.amount, row.currency):
            log.warning("payment request %s: paid %s, not what was asked", row.id, paid.plain())
            return
        await close(
            services, row.id, PAID, actor=gateway_actor(event.gateway), session=session,
            paid_with=event.related_id or event.object_id, why=f"paid ({event.raw_type})",
        )  # fmt: skip
