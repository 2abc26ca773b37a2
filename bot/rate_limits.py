"""How fast the bot may call a chat platform: token buckets shared by every process in Redis.

Slack and Discord limit an app per method, channel and workspace (or guild), not per
process: three `web` processes each keeping to one message a second would post three. So a
bucket lives in Redis, and a Lua script takes a token atomically against Redis's own clock
(the processes' clocks never have to agree). When a platform answers 429, `hold` closes the
bucket for its `Retry-After`, for every process at once.

If Redis is unreachable the bot still posts: each process keeps to the same rates on its
own (a blip must not silence approvals), and says so once in the log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# KEYS: the bucket, its hold. ARGV: tokens per second, burst. Returns milliseconds to wait
# (0: a token was taken). The bucket's state expires once it would be full again.
_TAKE = """
local held = redis.call('PTTL', KEYS[2])
if held > 0 then return held end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + (now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
"""


@dataclass(frozen=True)
class Rate:
    """`per_second` tokens a second on average, at most `burst` at once."""

    per_second: float
    burst: int = 1

    @classmethod
    def per_minute(cls, calls: int, burst: int | None = None) -> Rate:
        return cls(calls / 60, burst or max(1, calls // 10))


class SharedLimiter:
    """Token buckets named by strings (`slack:T1:chat.postMessage:C42`), shared through Redis."""

    def __init__(
        self,
        redis: aioredis.Redis,
        key: Callable[..., str],
        *,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self.redis = redis
        self.key = key
        self._sleep = sleep
        self._take = redis.register_script(_TAKE)
        self._local: dict[str, tuple[float, float]] = {}  # bucket -> (tokens, at): Redis away
        self._holds: dict[str, float] = {}  # bucket -> monotonic time it opens: Redis away
        self._redis_away = False

    async def wait(self, bucket: str, rate: Rate) -> float:
        """Wait for a token of `bucket`; returns the seconds waited."""
        waited = 0.0
        while True:
            delay = await self._try(bucket, rate)
            if delay <= 0:
                return waited
            await self._sleep(delay)  # type: ignore[misc]
            waited += delay

    async def held(self, bucket: str) -> float:
        """Wait while `bucket` is held (no token taken); returns the seconds waited."""
        waited = 0.0
        while True:
            try:
                millis = await self.redis.pttl(self.key("ratelimit", "hold", bucket))
                delay = max(0, int(millis)) / 1000
            except RedisError:
                self._away()
                delay = max(0.0, self._holds.get(bucket, 0.0) - time.monotonic())
            if delay <= 0:
                return waited
            await self._sleep(delay)  # type: ignore[misc]
            waited += delay

    async def hold(self, bucket: str, seconds: float) -> None:
        """Nobody takes from `bucket` for `seconds` (a 429's Retry-After), in any process."""
        millis = max(1, math.ceil(seconds * 1000))
        self._holds[bucket] = time.monotonic() + millis / 1000
        try:
            await self.redis.set(self.key("ratelimit", "hold", bucket), "1", px=millis)
        except RedisError:
            self._away()

    async def _try(self, bucket: str, rate: Rate) -> float:
        try:
            millis = await self._take(
                keys=[self.key("ratelimit", bucket), self.key("ratelimit", "hold", bucket)],
                args=[repr(rate.per_second), rate.burst],
            )
        except RedisError:
            self._away()
            return self._try_here(bucket, rate)
        self._redis_away = False
        return int(millis) / 1000

    def _try_here(self, bucket: str, rate: Rate) -> float:
        """The same bucket kept in this process alone."""
        now = time.monotonic()
        opens = self._holds.get(bucket, 0.0)
        if opens > now:
            return opens - now
        tokens, at = self._local.get(bucket, (float(rate.burst), now))
        tokens = min(rate.burst, tokens + (now - at) * rate.per_second)
        if tokens >= 1:
            self._local[bucket] = (tokens - 1, now)
            return 0.0
        self._local[bucket] = (tokens, now)
        return (1 - tokens) / rate.per_second

    def _away(self) -> None:
        if not self._redis_away:
            log.warning("Redis unavailable: chat rate limits are kept per process until it is back")
        self._redis_away = True
