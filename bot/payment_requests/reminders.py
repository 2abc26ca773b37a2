"""Reminders of open payment requests, and their expiry, on a schedule (hourly).

Each due request is read back from its gateway first: one paid without our hearing of it
(a lost webhook) is closed as paid, not reminded. A link the gateway let expire (a Stripe
Checkout Session lasts a day at most) is replaced by a new one before the reminder goes out.
Reminder `n` is queued once: its outbox purpose names it, and the row moves on under a
conditional update in the same transaction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from bot.gateways.base import GatewayError
from bot.job_schedule import periodic
from bot.models import PayLinkStatus
from bot.money import Money
from bot.payment_requests import (
    EXPIRED,
    OPEN,
    PAID,
    close,
    compose,
    lifetime,
    queue_email,
    reminder_steps,
    send_soon,
)
from bot.services import Services
from bot.store.tables import PaymentRequestRow
from bot.webhooks import gateway_actor

log = logging.getLogger(__name__)
BATCH = 200


@periodic(minute=7, second=0)
async def remind_payment_requests(ctx: dict[str, Any]) -> int:
    """Send the reminders due and expire the requests past their lifetime; returns how many."""
    return await run(ctx["services"])


async def run(services: Services, *, now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    ends = lifetime(services.settings)
    async with services.db.read() as session:
        due = list(await session.scalars(
            select(PaymentRequestRow)
            .where(PaymentRequestRow.state == OPEN, PaymentRequestRow.next_reminder_at <= now)
            .order_by(PaymentRequestRow.next_reminder_at).limit(BATCH)
        ))  # fmt: skip
        old = list(await session.scalars(
            select(PaymentRequestRow)
            .where(PaymentRequestRow.state == OPEN, PaymentRequestRow.created <= now - ends)
            .limit(BATCH)
        ))  # fmt: skip
    done = 0
    for row in old:
        done += await _expire(services, row)
    for row in due:
        if row.created > now - ends:
            try:
                done += await _remind(services, row, now)
            except GatewayError as exc:  # the next run tries again
                log.warning("payment request %s: reminder held back: %s", row.id, exc.message)
    return done


async def _expire(services: Services, row: PaymentRequestRow) -> int:
    gateway = services.gateways.get(row.gateway)
    try:
        link = await gateway.cancel_pay_link(row.link_id)
    except GatewayError as exc:
        log.warning("payment request %s: link not cancelled at expiry: %s", row.id, exc.message)
        return 0
    actor = gateway_actor(row.gateway)
    if link.status == PayLinkStatus.paid:
        return int(await close(services, row.id, PAID, actor=actor, paid_with=link.charge_id))
    why = f"not paid within {lifetime(services.settings).days} days"
    return int(await close(services, row.id, EXPIRED, actor=actor, why=why))


async def _remind(services: Services, row: PaymentRequestRow, now: datetime) -> int:
    gateway = services.gateways.get(row.gateway)
    link = await gateway.get_pay_link(row.link_id)
    if link.status == PayLinkStatus.paid:
        actor = gateway_actor(row.gateway)
        return int(await close(services, row.id, PAID, actor=actor, paid_with=link.charge_id))
    number = row.reminders_sent + 1
    if link.status != PayLinkStatus.open:
        link = await gateway.create_pay_link(
            row.customer_id, Money(minor=row.amount, currency=row.currency),
            description=row.description, reference=row.id,
            idempotency_key=f"{row.id}:link:{number}",
        )  # fmt: skip
    later = [row.created + step for step in reminder_steps(services.settings)[number:]]
    subject, message = compose(services, row, number)
    async with services.db.write() as session:
        moved = await session.execute(
            update(PaymentRequestRow)
            .where(
                PaymentRequestRow.id == row.id, PaymentRequestRow.state == OPEN,
                PaymentRequestRow.reminders_sent == row.reminders_sent,
            )
            .values(
                reminders_sent=number, next_reminder_at=later[0] if later else None,
                link_id=link.id, link_expires_at=link.expires_at,
            )
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            return 0  # paid, cancelled or reminded by another run meanwhile
        email_id = await queue_email(session, row, number, subject, message)
    await send_soon(services, email_id)
    return 1
