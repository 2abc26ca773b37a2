"""Cards are cached briefly, and dropped the moment money moves for the customer."""

from __future__ import annotations

import pytest

from tests.conftest import say


@pytest.fixture
def calls(services) -> list[str]:  # type: ignore[no-untyped-def]
    """Counts how often the ledger is really asked for a lookup."""
    ledger = services.gateways.get("ledger")
    real, seen = ledger.lookup, []

    async def counted(query):  # type: ignore[no-untyped-def]
        seen.append(query.value)
        return await real(query)

    ledger.lookup = counted
    return seen


async def test_repeat_lookup_is_served_from_the_cache(services, agent, calls):
    first = await say(services, agent, "lookup jane.doe@example.com")
    second = await say(services, agent, "lookup Jane.Doe@example.com")
    assert len(calls) == 1
    assert first.cards == second.cards


async def test_a_refund_drops_the_cached_card(services, agent, calls):
    await say(services, agent, "lookup jane.doe@example.com")
    refund = await say(services, agent, "refund ch_jane_1 10 reason: goodwill")
    assert refund.approval.state == "succeeded"
    after = await say(services, agent, "lookup jane.doe@example.com")
    assert len(calls) == 2
    assert "€10.00" in after.cards[0].model_dump_json()


async def test_a_card_with_a_failing_gateway_is_not_cached(services, agent, calls):
    from bot.gateways.registry import Gateways
    from tests.commands.test_lookup import Broken

    services.gateways = Gateways([services.gateways.get("ledger"), Broken()], timeout=2)
    await say(services, agent, "lookup jane.doe@example.com")
    await say(services, agent, "lookup jane.doe@example.com")
    assert len(calls) == 2


async def test_cache_can_be_turned_off(services, agent, calls):
    services.settings.lookup.cache_seconds = 0
    await say(services, agent, "lookup jane.doe@example.com")
    await say(services, agent, "lookup jane.doe@example.com")
    assert len(calls) == 2
