"""Listeners: other parts of the bot reacting to money that moved, without the core knowing them.

The webhook receiver and the approval executor call every listener twice: once
inside the transaction that records what happened (`record_*`: whatever a
listener writes there exists exactly when the cause does), and once after it
committed (`after_*`: start work, e.g. enqueue a job). A failing `after_*` is
logged and never undoes what was recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from bot.app import Services
    from bot.approvals.workflow import ApprovalView
    from bot.gateways.events import GatewayEvent


class Listener:
    """Override what you need; every method does nothing by default."""

    async def record_event(
        self, services: Services, session: AsyncSession, event: GatewayEvent
    ) -> None:
        """A new gateway event is being recorded (not called for duplicates or outdated ones)."""

    async def after_event(self, services: Services, event: GatewayEvent) -> None:
        """A new gateway event was recorded."""

    async def record_action(
        self, services: Services, session: AsyncSession, view: ApprovalView
    ) -> None:
        """An approved action is being recorded as succeeded."""

    async def after_action(self, services: Services, view: ApprovalView) -> None:
        """An approved action succeeded."""
