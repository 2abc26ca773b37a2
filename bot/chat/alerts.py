"""Posting queued alerts and questions: now, after a command, and on a steady poll.

Shared by the Slack and Discord adapters; each passes its own `deliver_alerts`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Deliver = Callable[[], Awaitable[int]]


async def deliver_now(deliver: Deliver) -> None:
    """Post what is queued (a customer's question just asked) without waiting for the poll."""
    try:
        await deliver()
    except Exception:
        log.exception("delivering alerts failed; the next poll tries again")


async def poll(deliver: Deliver, seconds: float) -> None:
    """Deliver every `seconds` until cancelled: what a failed post released, or another process queued."""
    while True:
        await asyncio.sleep(seconds)
        await deliver_now(deliver)
