"""One gateway asked a lookup as every kind it understands; what it cannot search, said."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from bot.gateways.base import Gateway, LookupQuery
from bot.gateways.readings import BROAD_KINDS
from bot.models import GatewayFailure, GatewayProfile

# The code of a "not asked" line: the gateway has no such search, nothing is wrong with it.
NOT_ASKED = "not_asked"
_SEARCH = {"name": "customers by name", "partial_email": "by part of an email"}


async def ask(gateway: Gateway, queries: Iterable[LookupQuery]) -> list[GatewayProfile]:
    """Every customer the gateway finds for any of the queries it answers, once each (the
    first answer wins: exact readings come first and carry the whole profile)."""
    asked = [q for q in queries if q.kind in gateway.lookup_kinds]
    found: dict[str, GatewayProfile] = {}
    for profiles in await asyncio.gather(*(gateway.lookup(q) for q in asked)):
        for profile in profiles:
            found.setdefault(profile.customer.id, profile)
    return list(found.values())


def not_asked(gateway: Gateway, queries: Iterable[LookupQuery]) -> GatewayFailure | None:
    """A "not asked" line for the broad searches the gateway does not have."""
    lacking = [
        _SEARCH[q.kind]
        for q in queries
        if q.kind in BROAD_KINDS and q.kind not in gateway.lookup_kinds
    ]
    if not lacking:
        return None
    return GatewayFailure(
        gateway=gateway.name,
        code=NOT_ASKED,
        message=f"{gateway.name} cannot search {' or '.join(dict.fromkeys(lacking))}",
    )
