"""A short-lived cache of lookups in Redis, dropped whenever money moves for that customer.

Cards are read far more often than they change; gateways are slow and
rate-limited. A cached card is at most `lookup.cache_seconds` old, and any
action the bot executes or any webhook about the customer drops it at once.
Actions never trust the cache: they re-read the charge from the gateway.
"""

from __future__ import annotations

import hashlib

from redis.exceptions import RedisError

from bot.index.search import searcher
from bot.models import BillingProfile
from bot.services import Services


def _key(services: Services, text: str) -> str:
    digest = hashlib.sha256(text.strip().lower().encode()).hexdigest()[:32]
    return services.key("lookup", digest)


def _index(services: Services, gateway: str, customer_id: str) -> str:
    return services.key("lookup-by-customer", gateway, customer_id)


async def lookup(services: Services, text: str) -> BillingProfile:
    """The customer's profile from every gateway, from the cache when it is fresh."""
    ttl = services.settings.lookup.cache_seconds
    key = _key(services, text)
    if ttl > 0:
        try:
            cached = await services.redis.get(key)
        except RedisError:
            cached = None  # the cache is an optimisation: never fail a lookup for it
        if cached:
            return BillingProfile.model_validate_json(cached)
    profile = await services.gateways.lookup(text, index=searcher(services))
    if ttl > 0 and profile.found and not profile.failures:
        try:
            async with services.redis.pipeline(transaction=True) as pipe:
                pipe.set(key, profile.model_dump_json(), ex=ttl)
                for part in profile.profiles:
                    index = _index(services, part.gateway, part.customer.id)
                    pipe.sadd(index, key)
                    pipe.expire(index, ttl)
                await pipe.execute()
        except RedisError:
            pass
    return profile


async def forget(services: Services, gateway: str, customer_id: str | None) -> None:
    """Drop every cached card showing this customer."""
    if not customer_id:
        return
    index = _index(services, gateway, customer_id)
    try:
        keys = await services.redis.smembers(index)
        await services.redis.delete(index, *keys)
    except RedisError:
        pass
