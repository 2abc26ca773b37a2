"""Each chat delivery acts once: a replayed or retried request is recognised and dropped.

A door names what identifies one delivery (a Slack request's signature, a
Discord interaction ID) and asks `first()` before it runs anything. Redis
answers the common case at once, and is what makes concurrent copies lose; a
unique row in `deliveries` is the durable backstop, so a replay still loses
after Redis lost its keys (a flush, a failover, an evicted key).

The claim comes before the command runs, so a crash between the two drops the
command rather than running it twice: for an action that moves money, at most
once is the safe side (the person sees no answer and asks again, which is a new
delivery).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from bot.services import Services
from bot.store.tables import Delivery

log = logging.getLogger(__name__)

# Longer than any window in which a platform accepts or resends a delivery (Slack: five
# minutes of signature age; Discord: an interaction token lives fifteen minutes).
REDIS_SECONDS = 3600
# SQL rows outlive the Redis keys by far; older ones are removed about once an hour.
KEEP = timedelta(days=2)
PRUNE_SECONDS = 3600


def delivery_key(*parts: str) -> str:
    """A fixed-length identity for the parts that make a delivery unique."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


async def first(services: Services, platform: str, delivery_id: str, kind: str = "") -> bool:
    """True for the first time this delivery is seen; False for every copy of it, however late."""
    key = services.key("delivery", platform, delivery_id)
    try:
        fresh = await services.redis.set(key, kind or "1", nx=True, ex=REDIS_SECONDS)
    except RedisError:
        log.warning("cannot de-duplicate %s delivery in Redis: SQL decides alone", platform)
        fresh = True
    if not fresh:
        log.warning("%s delivery %s (%s) seen before: dropped", platform, delivery_id[:16], kind)
        return False
    try:
        async with services.db.write() as session:
            session.add(
                Delivery(
                    platform=platform, delivery_id=delivery_id, kind=kind[:40], at=datetime.now(UTC)
                )
            )
    except IntegrityError:
        log.warning(
            "%s delivery %s (%s) replayed after its Redis key was gone: dropped",
            platform, delivery_id[:16], kind,
        )  # fmt: skip
        return False
    except Exception:
        # Not recorded, so not claimed: a retry of this delivery may still run.
        await _forget(services, key)
        raise
    await _prune(services)
    return True


async def _forget(services: Services, key: str) -> None:
    try:
        await services.redis.delete(key)
    except RedisError:
        log.warning("cannot release the delivery claim %s", key)


async def _prune(services: Services) -> None:
    """Drop rows no platform would resend any more, once an hour per deployment."""
    try:
        due = await services.redis.set(
            services.key("delivery", "pruned"), "1", nx=True, ex=PRUNE_SECONDS
        )
    except RedisError:
        return
    if not due:
        return
    try:
        async with services.db.write() as session:
            await session.execute(delete(Delivery).where(Delivery.at < datetime.now(UTC) - KEEP))
    except Exception:
        log.exception("pruning old deliveries failed; retried in an hour")
