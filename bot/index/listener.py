"""Keeps the billing index fresh between syncs: what webhooks say and what the bot did.

What an event says is written with the event, in its transaction (the refund, its amount,
the new status). What it does not say (a charge's refunded total after a refund) is read
from the gateway afterwards; if that read fails, the next sync mends it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.approvals.workflow import ApprovalView
from bot.gateways.base import GatewayError
from bot.gateways.events import EventKind, GatewayEvent
from bot.index.rows import Row, row
from bot.index.store import upsert
from bot.models import Refund
from bot.money import exponent
from bot.services import Listener, Services

log = logging.getLogger(__name__)

# What kind of object each event is about.
_KIND = {
    EventKind.refund: "refund",
    EventKind.capture: "charge",
    EventKind.payment_succeeded: "charge",
    EventKind.payment_failed: "charge",
    EventKind.dispute_created: "dispute",
    EventKind.invoice_paid: "invoice",
    EventKind.subscription_canceled: "subscription",
    EventKind.subscription_updated: "subscription",
}


def event_row(event: GatewayEvent) -> Row | None:
    """The index row an event alone can vouch for; None for events about nothing we mirror."""
    kind = _KIND.get(event.kind)
    if kind is None:
        return None
    amount = event.amount
    return {
        "gateway": event.gateway, "kind": kind, "object_id": event.object_id,
        "customer_id": event.customer_id, "email": None, "name": None, "name_key": None,
        "number": None, "related_id": event.related_id if kind in ("refund", "dispute") else None,
        "amount": amount.minor if amount else None, "currency": amount.currency if amount else None,
        "exponent": exponent(amount.currency) if amount else None, "amount_settled": None,
        "status": event.status, "created": event.created if kind in ("refund", "dispute") else None,
        "due": None, "paid_at": event.created if event.kind == EventKind.invoice_paid else None,
        "synced_at": datetime.now(UTC),
    }  # fmt: skip


class IndexListener(Listener):
    """Writes what webhooks and executed actions tell of gateway objects into the index."""

    async def record_event(
        self, services: Services, session: AsyncSession, event: GatewayEvent
    ) -> None:
        found = event_row(event)
        if found is not None:
            await upsert(session, [found])

    async def after_event(self, services: Services, event: GatewayEvent) -> None:
        charge = (
            event.related_id
            if event.kind in (EventKind.refund, EventKind.dispute_created)
            else None
        )
        if event.kind in (EventKind.capture, EventKind.payment_succeeded, EventKind.payment_failed):
            charge = event.object_id
        if charge:
            await _refresh_charge(services, event.gateway, charge)

    async def record_action(
        self, services: Services, session: AsyncSession, view: ApprovalView
    ) -> None:
        # A refund the bot made, in the transaction that records it: no read of the gateway
        # on the approval's path (the charge's refunded total follows with its webhook).
        voided = view.result_id == view.target_id  # an unsettled payment voided, not refunded
        if view.action == "refund" and view.result_id and not voided and view.amount is not None:
            refund = Refund(
                gateway=view.gateway, id=view.result_id, charge_id=view.target_id,
                amount=view.amount, reason=view.reason_code, created=view.updated_at,
            )  # fmt: skip
            found = row(refund, synced_at=datetime.now(UTC))
            await upsert(session, [found | {"customer_id": view.customer_id}])


async def _refresh_charge(services: Services, gateway_name: str, charge_id: str) -> None:
    try:
        charge = await services.gateways.get(gateway_name).get_charge(charge_id)
    except GatewayError as exc:
        log.info(
            "index: %s:%s not refreshed (%s); the next sync will", gateway_name, charge_id, exc
        )
        return
    async with services.db.write() as session:
        await upsert(session, [row(charge, synced_at=datetime.now(UTC))])
