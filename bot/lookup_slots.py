"""Lookups wait in line: at most so many run at once in a process, and across processes.

A lookup of a customer with 1,000 charges costs tens of milliseconds of CPU. Started all
at once on one event loop, a hundred of them share the CPU so thinly that each gateway's
lookup timeout fires before its answer is built, and the agents would read a false "no
match". So each lookup first takes a slot: `lookup.concurrency` per process (a FIFO line
here), then one of `lookup.shared_concurrency` shared by every process (a FIFO line in
Redis: a ticket per waiter, slots leased so that a dead process's slots come back). The
per-gateway timeout starts only once the lookup runs.

A lookup that waited `busy_after` seconds calls `busy(ahead)` once (the door tells the
agent "N lookups ahead of yours; the card follows") and keeps its place in line.

If Redis is unreachable, the per-process line still bounds the work (logged once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.services import Services

log = logging.getLogger(__name__)

LEASE_MS = 30_000  # a held slot not renewed for this long is free again (its process died)
WAITER_MS = 5_000  # a waiter not seen for this long leaves the line
POLL = 0.02  # seconds between tries for a shared slot (only slot holders here poll)

# KEYS: holders (id -> lease end), line (id -> ticket), seen (id -> waiter expiry), tickets.
# ARGV: id, limit, lease ms, waiter ms. Returns -1 when the slot is taken, else how many
# lookups are ahead (running, and waiting before this one). Times are Redis's own clock.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', KEYS[2], gone)
  redis.call('ZREM', KEYS[3], gone)
end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ARGV[1])
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
local running = redis.call('ZCARD', KEYS[1])
local rank = redis.call('ZRANK', KEYS[2], ARGV[1])
local taken = rank < tonumber(ARGV[2]) - running
if taken then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[3]) * 2) end
if taken then return -1 end
return running + rank
"""
# KEYS: holders. ARGV: id, lease ms. Extends a slot still held.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
"""

Busy = Callable[[int], Awaitable[None]]


class _Turn:
    """One lookup's place: in this process's line, then in the shared one."""

    def __init__(self) -> None:
        self.id = secrets.token_hex(8)
        self.waiting: asyncio.Future[None] | None = None
        self.shared_ahead = 0
        self.local = False  # holds a slot of this process
        self.shared = False  # holds a shared slot


class LookupSlots:
    """`per_process` lookups at once here, `shared` at once in every process (0: no shared bound)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        key: Callable[..., str],
        *,
        per_process: int,
        shared: int,
        lease_ms: int = LEASE_MS,
    ) -> None:
        self.per_process = per_process
        self.shared = shared
        self.lease_ms = lease_ms
        self._redis = redis
        self._keys = [key("lookup-slots", part) for part in ("held", "line", "seen", "tickets")]
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)
        self._running = 0
        self._line: deque[asyncio.Future[None]] = deque()
        self._redis_away = False

    @property
    def running(self) -> int:
        """Lookups holding a slot of this process now."""
        return self._running

    @contextlib.asynccontextmanager
    async def slot(
        self, *, busy_after: float = 2.0, busy: Busy | None = None
    ) -> AsyncIterator[None]:
        """Wait for a slot, hold it inside the block. If the wait passes `busy_after`
        seconds, `busy(ahead)` runs once, beside the wait and the lookup; leaving the block
        waits for it, so what follows (the card) comes after the notice."""
        turn = _Turn()
        taking = asyncio.ensure_future(self._acquire(turn))
        notice: asyncio.Future[None] | None = None
        try:
            if busy is not None:
                await asyncio.wait({taking}, timeout=busy_after)
                if not taking.done():
                    notice = asyncio.ensure_future(_say(busy, self._ahead(turn)))
            await taking
        except BaseException:
            for task in (taking, notice):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            await self._release(turn)
            raise
        renewing = asyncio.ensure_future(self._keep(turn)) if turn.shared else None
        try:
            yield
        finally:
            if renewing is not None:
                renewing.cancel()
            await self._release(turn)
            if notice is not None:
                await notice

    def _ahead(self, turn: _Turn) -> int:
        """Lookups before this one: running or waiting earlier (here, or in the shared line)."""
        if turn.waiting is not None and turn.waiting in self._line:
            return self._running + self._line.index(turn.waiting)
        return max(turn.shared_ahead, 1)

    async def _acquire(self, turn: _Turn) -> None:
        if self._running < self.per_process and not self._line:
            self._running += 1
        else:
            turn.waiting = asyncio.get_running_loop().create_future()
            self._line.append(turn.waiting)
            try:
                await turn.waiting
            except asyncio.CancelledError:
                if turn.waiting.done() and not turn.waiting.cancelled():
                    self._next()  # handed a slot just as it was cancelled: pass it on
                else:
                    with contextlib.suppress(ValueError):
                        self._line.remove(turn.waiting)
                raise
        turn.local = True
        if self.shared <= 0:
            return
        while True:
            try:
                ahead = int(
                    await self._take(
                        keys=self._keys, args=[turn.id, self.shared, self.lease_ms, WAITER_MS]
                    )
                )
            except RedisError:
                self._away()
                return  # the per-process bound still holds
            self._redis_away = False
            if ahead < 0:
                turn.shared = True
                return
            turn.shared_ahead = ahead
            await asyncio.sleep(POLL)

    async def _keep(self, turn: _Turn) -> None:
        """Renew the shared slot's lease while the lookup runs."""
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                await self._renew(keys=self._keys[:1], args=[turn.id, self.lease_ms])
            except RedisError:
                self._away()

    async def _release(self, turn: _Turn) -> None:
        if turn.local:
            turn.local = False
            self._next()
        if self.shared > 0 and not self._redis_away:
            held, line, seen = self._keys[:3]
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.zrem(held, turn.id).zrem(line, turn.id).zrem(seen, turn.id)
                    await pipe.execute()
            except RedisError:
                self._away()  # the lease runs out on its own
        turn.shared = False

    def _next(self) -> None:
        """A slot of this process is free: the first in line takes it, or it is returned."""
        while self._line:
            waiting = self._line.popleft()
            if not waiting.done():
                waiting.set_result(None)
                return
        self._running -= 1

    def _away(self) -> None:
        if not self._redis_away:
            log.warning("Redis unavailable: lookups are bounded per process until it is back")
        self._redis_away = True


async def _say(busy: Busy, ahead: int) -> None:
    try:
        await busy(ahead)
    except Exception:
        log.exception("could not say a lookup is waiting in line")


_SLOTS: dict[int, LookupSlots] = {}  # id(services) -> its line, while the services live


def slots(services: Services) -> LookupSlots:
    """The one line of lookups for these services in this process (every door shares it)."""
    found = _SLOTS.get(id(services))
    if found is None:
        settings = services.settings.lookup
        found = LookupSlots(
            services.redis,
            services.key,
            per_process=settings.concurrency,
            shared=settings.shared_concurrency,
        )
        _SLOTS[id(services)] = found
        weakref.finalize(services, _SLOTS.pop, id(services), None)
    return found
