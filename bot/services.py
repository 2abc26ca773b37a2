"""What the core receives: the `Services` record and the `Listener` protocol (the bottom layer).

This module imports no door, no concrete gateway and nothing of the documents or
approvals machinery; `bot/wiring.py` opens the stores and fills the record.

Listeners are other parts of the bot reacting to money that moved, without the
core knowing them. The webhook receiver and the approval executor call every
listener twice: once inside the transaction that records what happened
(`record_*`: whatever a listener writes there exists exactly when the cause
does), and once after it committed (`after_*`: start work, e.g. enqueue a job).
A failing `after_*` is logged and never undoes what was recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.documents.config import Branding, TaxConfig

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.actors import Actor
    from bot.approvals.budget import Budgets
    from bot.approvals.policy import Policy
    from bot.approvals.workflow import ApprovalView
    from bot.gateways.events import GatewayEvent
    from bot.gateways.registry import Gateways
    from bot.settings import Settings
    from bot.store import redis as redis_store
    from bot.store.db import Database

log = logging.getLogger(__name__)


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


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: aioredis.Redis
    gateways: Gateways
    policy: Policy
    budgets: Budgets
    # React to money that moved (webhook events, executed actions): see `Listener` above.
    listeners: list[Listener] = field(default_factory=list)
    branding: Branding = field(default_factory=Branding)
    tax: TaxConfig = field(default_factory=TaxConfig)
    # Called with (approval_id, actor) after a request's state changes, so every
    # chat platform showing it can redraw it, whichever platform decided.
    decision_hooks: list[Callable[[str, Actor], Awaitable[None]]] = field(default_factory=list)
    _engine: redis_store.EmbeddedEngine | None = field(default=None, repr=False)

    async def announce(self, approval_id: str, actor: Actor) -> None:
        """Tell every decision hook; a failing hook is logged, never undoes the decision."""
        for hook in self.decision_hooks:
            try:
                await hook(approval_id, actor)
            except Exception:
                log.exception(
                    "decision hook %s failed for %s",
                    getattr(hook, "__qualname__", hook),
                    approval_id,
                )

    def key(self, *parts: str) -> str:
        """A Redis key in this deployment's namespace."""
        return self.settings.redis_prefix + ":".join(parts)

    async def close(self) -> None:
        await self.gateways.close()
        await self.redis.aclose()
        await self.db.close()
        if self._engine is not None:
            self._engine.stop()
