"""Per-person daily auto-approve budgets, kept in Redis so every process sees one total."""

from __future__ import annotations

from datetime import UTC, datetime

import redis.asyncio as aioredis

from bot.money import Money

# Check and spend in one step: two processes cannot both fit under the cap.
_SPEND = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
if spent + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return -1 end
local now = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], 172800)
return now
"""


class Budgets:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._spend = redis.register_script(_SPEND)

    def _key(self, who: str, currency: str) -> str:
        return f"{self.prefix}budget:{datetime.now(UTC):%Y-%m-%d}:{who}:{currency}"

    async def spend(self, who: str, amount: Money, cap: Money) -> bool:
        """Take `amount` from today's budget if it fits under `cap`; False (nothing taken) if not."""
        result = await self._spend(
            keys=[self._key(who, amount.currency)], args=[amount.minor, cap.minor]
        )
        return int(result) >= 0

    async def give_back(self, who: str, amount: Money) -> None:
        """Return budget for an auto-approved action that did not go through."""
        await self.redis.decrby(self._key(who, amount.currency), amount.minor)

    async def spent(self, who: str, currency: str) -> int:
        return int(await self.redis.get(self._key(who, currency)) or 0)
