"""Reminders before a dispute's evidence is due: posted to the alerts channel, once each.

Every hour each gateway is asked for the disputes still waiting for our answer. One whose
evidence is due within N days (`dispute_reminder_days`, say [7, 3]) gets one reminder per
N it has come within: the `dispute_reminders` row (gateway, dispute, N) is written in the
same transaction as the alert, so a reminder is posted once whatever runs the job, however
often, and a restart does not post it again. Answered disputes are not asked about.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from bot.cards.disputes import reminder_card
from bot.gateways.base import Gateway, GatewayError
from bot.job_schedule import periodic
from bot.models import Dispute
from bot.notify import queue
from bot.services import Services
from bot.store.tables import DisputeReminder

log = logging.getLogger(__name__)


def threshold(dispute: Dispute, days: list[int], now: datetime) -> int | None:
    """The fewest days in `days` the evidence is due within; None if none, or past due."""
    due = dispute.evidence_due_by
    if due is None or due <= now:
        return None
    within = [d for d in days if due - now <= timedelta(days=d)]
    return min(within) if within else None


async def remind(services: Services, now: datetime | None = None) -> int:
    """Post the reminders now due; returns how many were posted."""
    now = now or datetime.now(UTC)
    posted = 0
    for gateway in services.gateways:
        for dispute in await _open(gateway):
            days = threshold(dispute, services.settings.dispute_reminder_days, now)
            if days is not None and await _post_once(services, dispute, days, now):
                posted += 1
    return posted


async def _open(gateway: Gateway) -> list[Dispute]:
    try:
        return await gateway.open_disputes()
    except GatewayError as exc:  # Unsupported, or down: the next run asks again
        log.info("dispute reminders: %s: %s", gateway.name, exc)
        return []


async def _post_once(services: Services, dispute: Dispute, days: int, now: datetime) -> bool:
    try:
        async with services.db.write() as session:
            key = (dispute.gateway, dispute.id, days)
            if await session.get(DisputeReminder, key) is not None:
                return False
            session.add(DisputeReminder(gateway=dispute.gateway, dispute_id=dispute.id, days=days,
                                        posted_at=now))  # fmt: skip
            await queue(
                session,
                kind="dispute_due",
                card=reminder_card(dispute, days, locale=services.settings.locale),
                channel=services.settings.alerts_channel,
            )
    except IntegrityError:
        return False  # another worker posted it at the same moment
    return True


@periodic(minute=17, second=45, run_at_startup=True)
async def remind_disputes(ctx: dict[str, Any]) -> int:
    """Hourly: remind the alerts channel of disputes whose evidence is due soon."""
    posted = await remind(ctx["services"])
    if posted:
        log.info("dispute reminders: posted %d", posted)
    return posted
