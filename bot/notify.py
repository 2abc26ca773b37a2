"""Alerts to a chat channel, platform-neutral: cards are queued durably in SQL.

The alerts channel names its platform (`slack:C0123ABC`); that platform's
adapter claims and posts what is queued for it. The `alerts` command shows the
newest on every platform.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cards.model import Card, Section
from bot.store.db import Database
from bot.store.tables import Notification

# More plain alerts than this for one channel in one delivery go as one digest message.
DIGEST_AT = 5
ONE_BY_ONE = frozenset({"question", "approval"})


class Claimed(NamedTuple):
    """An alert one process took to post: its ID, kind (`question`, `approval`, ...), channel
    on the platform (`C123`) and card."""

    id: int
    kind: str
    channel: str
    card: Card


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


async def claim(db: Database, platform: str, limit: int = 20) -> list[Claimed]:
    """Take the undelivered alerts for one platform's channels (`slack:C123`).

    Each alert has exactly one taker, however many processes claim at once.

    A claimed alert that cannot be posted goes back with `release`.
    """
    taken = []
    for notification_id, kind, card, channel in await _pending_for(db, f"{platform}:", limit):
        if await mark_delivered(db, notification_id):
            taken.append(Claimed(notification_id, kind, channel.removeprefix(f"{platform}:"), card))
    return taken


async def release(db: Database, *notification_ids: int) -> None:
    """Put claimed alerts back, to be tried again."""
    async with db.write() as session:
        await session.execute(
            update(Notification)
            .where(Notification.id.in_(notification_ids))
            .values(delivered_at=None)
        )


def by_channel(claimed: list[Claimed]) -> list[tuple[str, list[Claimed]]]:
    """The claimed alerts grouped by channel, each group and channel in the order queued."""
    groups: dict[str, list[Claimed]] = {}
    for alert in claimed:
        groups.setdefault(alert.channel, []).append(alert)
    return list(groups.items())


class Posting(NamedTuple):
    """One message to post, and the alerts it delivers."""

    ids: list[int]
    card: Card


def postings(alerts: list[Claimed]) -> list[Posting]:
    """What to post for one channel's alerts: each on its own, or, past `DIGEST_AT`, the
    plain alerts as one digest (a question is the thread its customer is answered in, and an
    approval carries its buttons: those always go one by one)."""
    plain = [a for a in alerts if a.kind not in ONE_BY_ONE]
    if len(plain) <= DIGEST_AT:
        return [Posting([a.id], a.card) for a in alerts]
    alone = [Posting([a.id], a.card) for a in alerts if a.kind in ONE_BY_ONE]
    return [*alone, Posting([a.id for a in plain], digest([a.card for a in plain]))]


def digest(cards: list[Card]) -> Card:
    """Many alerts as one card: each one's title and subtitle on a line."""
    lines = [f"• {c.title}" + (f": {c.subtitle}" if c.subtitle else "") for c in cards]
    return Card(
        title=f"{len(cards)} alerts at once",
        tone="warning",
        sections=[Section(text="\n".join(lines))],
        footer="Each one, in full, is in `/billing alerts`.",
    )


async def _pending_for(db: Database, prefix: str, limit: int) -> list[tuple[int, str, Card, str]]:
    async with db.read() as session:
        rows = await session.scalars(
            select(Notification)
            .where(Notification.delivered_at.is_(None), Notification.channel.startswith(prefix))
            .order_by(Notification.id)
            .limit(limit)
        )
        return [
            (row.id, row.kind, Card.model_validate(row.card), row.channel or "") for row in rows
        ]


async def mark_delivered(db: Database, notification_id: int) -> bool:
    """True for the one caller that delivers it; a second deliverer gets False."""
    async with db.write() as session:
        result = await session.execute(
            update(Notification)
            .where(Notification.id == notification_id, Notification.delivered_at.is_(None))
            .values(delivered_at=datetime.now(UTC))
        )
        return result.rowcount == 1  # type: ignore[attr-defined]
