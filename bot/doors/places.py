"""Where each chat platform shows an approval request, so a decision redraws every copy.

Used by the door base (`bot/doors/base.py`); nothing here knows a chat SDK.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from bot.services import Services
from bot.store.tables import ChatMessage


async def remember(
    services: Services,
    approval_id: str,
    platform: str,
    channel: str,
    message: str,
    thread: str | None,
) -> None:
    """Store one posted copy of a request (posting it again replaces the row)."""
    async with services.db.write() as session:
        await session.merge(
            ChatMessage(
                approval_id=approval_id, platform=platform, channel_id=channel,
                message_id=message, thread_id=thread, created=datetime.now(UTC),
            )
        )  # fmt: skip


async def shown(services: Services, approval_id: str, platform: str) -> list[ChatMessage]:
    """Every stored copy of a request on one platform, oldest first."""
    async with services.db.read() as session:
        return list(
            await session.scalars(
                select(ChatMessage)
                .where(ChatMessage.approval_id == approval_id, ChatMessage.platform == platform)
                .order_by(ChatMessage.created)
            )
        )
