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

    @staticmethod
    def today() -> str:
        """The budget day (UTC) a spend made now counts against."""
        return f"{datetime.now(UTC):%Y-%m-%d}"

    def _key(self, who: str, currency: str, day: str | None = None) -> str:
        return f"{self.prefix}budget:{day or self.today()}:{who}:{currency}"

    async def spend(self, who: str, amount: Money, cap: Money, *, day: str | None = None) -> bool:
        """Take `amount` from the day's budget if it fits under `cap`; False (nothing taken) if not."""
        result = await self._spend(
            keys=[self._key(who, amount.currency, day)], args=[amount.minor, cap.minor]
        )
        return int(result) >= 0

    async def give_back(self, who: str, amount: Money, *, day: str | None = None) -> None:
        """Return budget for an auto-approved action that did not go through.

        `day` is the day it was spent: a give-back after midnight returns it to that day.
        """
        await self.redis.decrby(self._key(who, amount.currency, day), amount.minor)

    async def spent(self, who: str, currency: str) -> int:
        return int(await self.redis.get(self._key(who, currency)) or 0)
