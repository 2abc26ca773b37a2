"""Alerts to a chat channel, platform-neutral: cards are queued durably in SQL.

The alerts channel names its platform (`slack:C0123ABC`); that platform's
adapter claims and posts what is queued for it. The `alerts` command shows the
newest on every platform.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cards.model import Card
from bot.store.db import Database
from bot.store.tables import Notification


async def queue(session: AsyncSession, *, kind: str, card: Card, channel: str | None) -> None:
    """Queue an alert inside the caller's transaction, so it exists exactly when its cause does."""
    session.add(
        Notification(
            channel=channel, kind=kind, card=card.model_dump(mode="json"), created=datetime.now(UTC)
        )
    )


async def pending(db: Database, limit: int = 50) -> list[tuple[int, str, Card]]:
    """Undelivered alerts, oldest first: (id, kind, card)."""
    async with db.read() as session:
        rows = await session.scalars(
            select(Notification)
            .where(Notification.delivered_at.is_(None))
            .order_by(Notification.id)
            .limit(limit)
        )
        return [(row.id, row.kind, Card.model_validate(row.card)) for row in rows]


async def recent(db: Database, limit: int = 10) -> list[Card]:
    """The newest alerts, delivered or not, newest first."""
    async with db.read() as session:
        rows = await session.scalars(
            select(Notification).order_by(Notification.id.desc()).limit(limit)
        )
        return [Card.model_validate(row.card) for row in rows]


async def claim(db: Database, platform: str, limit: int = 20) -> list[tuple[int, str, Card]]:
    """Take the undelivered alerts for one platform's channels (`slack:C123`): (id, channel, card).

    Each alert has exactly one taker, however many processes claim at once.

    A claimed alert that cannot be posted goes back with `release`.
    """
    taken = []
    for notification_id, card, channel in await _pending_for(db, f"{platform}:", limit):
        if await mark_delivered(db, notification_id):
            taken.append((notification_id, channel.removeprefix(f"{platform}:"), card))
    return taken


async def release(db: Database, notification_id: int) -> None:
    """Put a claimed alert back, to be tried again."""
    async with db.write() as session:
        await session.execute(
            update(Notification).where(Notification.id == notification_id).values(delivered_at=None)
        )


async def _pending_for(db: Database, prefix: str, limit: int) -> list[tuple[int, Card, str]]:
    async with db.read() as session:
        rows = await session.scalars(
            select(Notification)
            .where(Notification.delivered_at.is_(None), Notification.channel.startswith(prefix))
            .order_by(Notification.id)
            .limit(limit)
        )
        return [(row.id, Card.model_validate(row.card), row.channel or "") for row in rows]


async def mark_delivered(db: Database, notification_id: int) -> bool:
    """True for the one caller that delivers it; a second deliverer gets False."""
    async with db.write() as session:
        result = await session.execute(
            update(Notification)
            .where(Notification.id == notification_id, Notification.delivered_at.is_(None))
            .values(delivered_at=datetime.now(UTC))
        )
        return result.rowcount == 1  # type: ignore[attr-defined]
