"""Backfill and keep up the billing index, gateway by gateway, page by page.

Each page is written with its cursor in one transaction, so a sync killed at any moment
resumes after the last page it wrote and never writes a page twice. A gateway that says
"slow down" (rate limited) or is briefly away is waited for with growing pauses; one that
stays away stops the sync, its cursor kept. One sync per gateway at a time, across
processes (a Redis lock). Webhooks keep the index fresh between syncs (`listener.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import LockError, RedisError
from sqlalchemy import select

from bot.errors import UserError
from bot.gateways.base import Capability, ErrorCode, Gateway, GatewayError, SyncPage
from bot.index.rows import KINDS, row
from bot.index.store import upsert
from bot.job_schedule import periodic
from bot.services import Services
from bot.store.tables import SyncCursor

log = logging.getLogger(__name__)

PAGE = 200
RETRIES = 6
# How long the sync lock outlives its holder: renewed after every page and before every
# wait, so a live sync keeps it however long it runs, and one whose process died (killed,
# or a worker stopped mid-sync) frees its gateway within this, not after ten minutes.
LOCK_SECONDS = 60
_WAIT = (ErrorCode.rate_limited, ErrorCode.unavailable, ErrorCode.timeout)
Progress = Callable[[str, str, int], None]  # (gateway, kind, objects written so far)
Extend = Callable[..., Awaitable[None]]  # keep the sync lock (for so many seconds)


@dataclass
class SyncResult:
    gateway: str
    written: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None  # why nothing was synced

    @property
    def total(self) -> int:
        return sum(self.written.values())


def _now() -> datetime:
    return datetime.now(UTC)


async def sync_all(
    services: Services,
    names: Sequence[str] | None = None,
    *,
    since: datetime | None = None,
    progress: Progress | None = None,
    pause: float = 1.0,
) -> list[SyncResult]:
    """Sync the named gateways (every configured one by default), one after another."""
    chosen = list(names) if names else [g.name for g in services.gateways]
    return [
        await sync_gateway(
            services, services.gateways.get(name), since=since, progress=progress, pause=pause
        )
        for name in chosen
    ]


async def sync_gateway(
    services: Services,
    gateway: Gateway,
    *,
    since: datetime | None = None,
    progress: Progress | None = None,
    pause: float = 1.0,
    page_size: int = PAGE,
) -> SyncResult:
    """Every kind of object of one gateway, from its cursors (or from `since`, afresh)."""
    result = SyncResult(gateway.name)
    if Capability.sync not in gateway.capabilities:
        result.skipped = (
            f"the {gateway.name} gateway cannot be mirrored yet: lookups still ask it live"
        )
        return result
    lock = services.redis.lock(
        services.key("lock", "sync", gateway.name), timeout=LOCK_SECONDS, blocking_timeout=0.1
    )

    async def extend(seconds: float = LOCK_SECONDS) -> None:
        try:
            await lock.extend(seconds, replace_ttl=True)
        except (LockError, RedisError):  # another sync may have it now: stop, resume later
            raise UserError(
                "busy", f"the sync of {gateway.name} lost its lock; run it again to resume"
            ) from None

    try:
        held = await lock.acquire()
    except RedisError as exc:  # not "running already": nobody may hold it
        raise UserError(
            "unavailable", f"the sync of {gateway.name} cannot take its lock: Redis said {exc}"
        ) from None
    if not held:
        raise UserError("busy", f"a sync of {gateway.name} is running already")
    try:
        for kind in KINDS:
            result.written[kind] = await _sync_kind(
                services, gateway, kind, since=since, progress=progress, pause=pause,
                page_size=page_size, extend=extend,
            )  # fmt: skip
    finally:
        try:
            await lock.release()
        except (LockError, RedisError) as exc:  # lost, or Redis away: it expires on its own
            log.warning("the sync lock of %s was not released: %r", gateway.name, exc)
    return result


async def _cursor(services: Services, gateway: str, kind: str) -> SyncCursor | None:
    async with services.db.read() as session:
        return await session.get(SyncCursor, (gateway, kind))


async def _sync_kind(
    services: Services, gateway: Gateway, kind: str, *, since: datetime | None,
    progress: Progress | None, pause: float, page_size: int, extend: Extend,
) -> int:  # fmt: skip
    stored = await _cursor(services, gateway.name, kind)
    # `since` starts afresh from that date; otherwise carry on where the last sync stopped.
    cursor = None if since is not None or stored is None else stored.cursor
    start = since if since is not None else (stored.since if stored else None)
    written = 0
    while True:
        page = await _page(gateway, kind, cursor, start, page_size, pause, extend)
        synced_at = _now()
        async with services.db.write() as session:
            written += await upsert(session, [row(o, synced_at=synced_at) for o in page.objects])
            saved = await session.get(SyncCursor, (gateway.name, kind))
            if saved is None:
                saved = SyncCursor(gateway=gateway.name, kind=kind, synced=0)
                session.add(saved)
            saved.cursor, saved.since, saved.done = page.cursor, start, not page.more
            saved.synced, saved.updated = (saved.synced or 0) + len(page.objects), synced_at
        if progress is not None:
            progress(gateway.name, kind, written)
        if not page.more:
            return written
        cursor = page.cursor
        await extend()


async def _page(
    gateway: Gateway, kind: str, cursor: str | None, since: datetime | None, size: int,
    pause: float, extend: Extend,
) -> SyncPage:  # fmt: skip
    """One page, waited for with growing pauses while the gateway asks us to slow down."""
    for attempt in range(RETRIES + 1):
        try:
            return await gateway.sync_page(kind, cursor, since=since, limit=size)
        except GatewayError as exc:
            if exc.code not in _WAIT or attempt == RETRIES:
                raise
            wait = pause * 2**attempt
            log.warning(
                "sync of %s %ss: %s; again in %.1f s", gateway.name, kind, exc.message, wait
            )
            await extend(wait + LOCK_SECONDS)  # still ours while we wait
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")


@periodic(second=40)
async def index_sync(ctx: dict[str, Any]) -> str:
    """Every `index_sync_minutes`, once per deployment: sync every gateway that can be."""
    services: Services = ctx["services"]
    minutes = services.settings.index_sync_minutes
    if minutes <= 0:
        return "off"
    try:
        # The job runs every minute; the key makes one run per interval sync, in one worker.
        if not await services.redis.set(
            services.key("index", "sync-due"), "1", nx=True, ex=minutes * 60
        ):
            return "not due"
    except RedisError:
        return "Redis unavailable"
    done = []
    for gateway in services.gateways:
        try:
            result = await sync_gateway(services, gateway)
        except UserError as exc:  # busy elsewhere, or the gateway stayed away: next time
            log.warning("index sync of %s: %s", gateway.name, exc.message)
            continue
        done.append(
            f"{gateway.name}: {result.total}" if not result.skipped else f"{gateway.name}: -"
        )
    return ", ".join(done)


async def cursors(services: Services) -> list[SyncCursor]:
    """Where every gateway's sync stands, for `chargedesk sync --status`."""
    async with services.db.read() as session:
        return list(
            await session.scalars(select(SyncCursor).order_by(SyncCursor.gateway, SyncCursor.kind))
        )
