"""Discord REST calls kept to Discord's rate limits across every process of the bot.

discord.py already reads Discord's bucket headers and waits out a 429 inside one process.
Several processes share one bot token, and Discord counts per token: 50 requests a second
at most, per-route buckets, and a temporary ban after 10,000 invalid requests (401, 403,
429) in 10 minutes. This module hooks discord.py's HTTP session (an aiohttp trace, no
patching) to share that knowledge through Redis:

- before a request: a token from the bot's global bucket, and a wait while its route is
  held by another process;
- after it: an exhausted bucket (`X-RateLimit-Remaining: 0`) or a 429 holds the route (or
  everything, for a global 429) for every process until Discord's reset;
- invalid requests are counted per 10-minute window; near the ban, every process stops
  calling Discord until the window ends.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
from redis.exceptions import RedisError

from bot.rate_limits import Rate, SharedLimiter

log = logging.getLogger(__name__)

GLOBAL = Rate(per_second=50, burst=50)
INVALID_WINDOW = 600  # seconds: Discord's 10 minutes
INVALID_STOP = 9_000  # of Discord's 10,000: stop with a margin
_SNOWFLAKE = re.compile(r"/\d{15,}")
_MAJOR = re.compile(r"^/(channels|guilds|webhooks)/\d+")


def route(method: str, path: str) -> str:
    """The route bucket a request counts against: its path with IDs folded, except the major
    one (channel, guild or webhook) Discord keeps a bucket apart for."""
    path = path.split("/api/v10", 1)[-1]
    major = _MAJOR.match(path)
    head = major.group(0) if major else ""
    return f"{method} {head}{_SNOWFLAKE.sub('/:id', path[len(head) :])}"


class DiscordLimits:
    """The shared limits of one bot token; `trace()` goes to discord.Client(http_trace=...)."""

    def __init__(self, limiter: Callable[[], SharedLimiter | None], token: Callable[[], str]):
        self._limiter = limiter
        self._token = token

    def trace(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._before)
        trace.on_request_end.append(self._after)
        return trace

    def _bot(self) -> str:
        # The token's fingerprint names the bot in Redis keys; the token never does.
        return hashlib.sha256(self._token().encode()).hexdigest()[:12]

    async def _before(self, _session: Any, _ctx: SimpleNamespace, params: Any) -> None:
        limiter = self._limiter()
        if limiter is None:
            return
        bot = self._bot()
        await limiter.wait(f"discord:{bot}:global", GLOBAL)
        await limiter.held(f"discord:{bot}:{route(params.method, params.url.path)}")

    async def _after(self, _session: Any, _ctx: SimpleNamespace, params: Any) -> None:
        limiter = self._limiter()
        if limiter is None:
            return
        bot, response = self._bot(), params.response
        headers = response.headers
        bucket = f"discord:{bot}:{route(params.method, params.url.path)}"
        if response.status == 429:
            wait = _seconds(headers.get("Retry-After"))
            if headers.get("X-RateLimit-Global") or headers.get("X-RateLimit-Scope") == "global":
                await limiter.hold(f"discord:{bot}:global", wait)
            else:
                await limiter.hold(bucket, wait)
        elif headers.get("X-RateLimit-Remaining") == "0":
            await limiter.hold(bucket, _seconds(headers.get("X-RateLimit-Reset-After")))
        shared = headers.get("X-RateLimit-Scope") == "shared"  # Discord does not count these
        if response.status in (401, 403) or (response.status == 429 and not shared):
            await self._invalid(limiter, bot)

    async def _invalid(self, limiter: SharedLimiter, bot: str) -> None:
        window = int(time.time()) // INVALID_WINDOW
        key = limiter.key("ratelimit", "discord-invalid", bot, str(window))
        try:
            count = await limiter.redis.incr(key)
            if count == 1:
                await limiter.redis.expire(key, INVALID_WINDOW)
        except RedisError:
            return
        if count >= INVALID_STOP:
            rest = INVALID_WINDOW - time.time() % INVALID_WINDOW
            log.error(
                "Discord: %d invalid requests in 10 minutes; pausing all calls for %.0f s "
                "to stay clear of Discord's ban", count, rest,
            )  # fmt: skip
            await limiter.hold(f"discord:{bot}:global", rest)


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 1.0
    except ValueError:
        return 1.0
