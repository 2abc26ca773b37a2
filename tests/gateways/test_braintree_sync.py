"""Braintree mirrored into the billing index: searched by creation time through the SDK,
page by page with a (created_at, id) cursor that resumes and never writes one twice."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.gateways.base import Gateway
from bot.index.sync import sync_gateway
from bot.services import Services
from chargedesk_emulators.braintree import BraintreeEmulator
from tests.fakes.braintree_env import CURRENCY, braintree_beside
from tests.index.syncing import indexed as index_of
from tests.index.syncing import sync_killed

pytestmark = pytest.mark.storage


@pytest.fixture
async def braintree(services) -> AsyncIterator[tuple[BraintreeEmulator, Gateway]]:  # type: ignore[no-untyped-def]
    """Two customers: the contract's (sales, refunds, a dispute, two subscriptions) and one
    whose three sales were made in the same second, so pages split ties."""
    async with braintree_beside(services) as (api, seeded):
        api.refund_outside(seeded.charge_id, "10.00")
        api.add_dispute(seeded.charge_id, amount="20.00")
        other = api.add_customer("ana@example.com", "Ana", "Lima")
        for amount in ("11.00", "12.00", "13.00"):
            api.add_sale(other, amount, CURRENCY, status="settled", days_ago=5)
        yield api, services.gateways.get("braintree")


async def indexed(services: Services, kind: str) -> list[str]:
    return sorted(await index_of(services, "braintree", kind))


def transaction_fetches(api: BraintreeEmulator) -> list[object]:
    """The batches of transactions fetched by ID (after a search answered their IDs)."""
    found = api.requests_to("POST", "/transactions/advanced_search")
    return [e for e in found if e.path.endswith("/advanced_search")]


def expected(api: BraintreeEmulator) -> dict[str, list[str]]:
    """What Braintree holds, by our kinds."""
    sales = [t.id for t in api.transactions.values() if t.type == "sale"]
    credits = [t.id for t in api.transactions.values() if t.type == "credit"]
    return {
        "customer": sorted(api.customers), "charge": sorted(sales), "refund": sorted(credits),
        "subscription": sorted(api.subscriptions), "dispute": sorted(api.disputes),
    }  # fmt: skip


async def test_braintree_sync_fills_the_index_then_finds_nothing_new(services, braintree):
    api, gateway = braintree
    first = await sync_gateway(services, gateway, page_size=2, pause=0.01)
    for kind, ids in expected(api).items():
        assert await indexed(services, kind) == ids, kind
        assert first.written[kind] == len(ids), kind
    assert first.written["invoice"] == 0  # Braintree has none
    fetches = len(transaction_fetches(api))
    again = await sync_gateway(services, gateway, page_size=2, pause=0.01)
    assert again.total == 0
    # Charges and refunds each searched from their cursor: one batch, the last one seen.
    assert len(transaction_fetches(api)) - fetches == 2
    ana = next(iter(c for c in api.customers.values() if c.email == "ana@example.com"))
    new = api.add_sale(ana.id, "14.00", CURRENCY, status="settled", days_ago=0)
    third = await sync_gateway(services, gateway, page_size=2, pause=0.01)
    assert third.written == {**{k: 0 for k in third.written}, "charge": 1}
    assert new in await indexed(services, "charge")


async def test_an_interrupted_braintree_sync_resumes_without_writing_twice(services, braintree):
    api, gateway = braintree
    sales = expected(api)["charge"]
    assert len(sales) >= 5

    cursor = await sync_killed(services, gateway, charges=4)
    assert cursor.synced == 4
    resumed = await sync_gateway(services, gateway, page_size=2, pause=0.01)
    assert resumed.written["charge"] == len(sales) - 4  # the rest, none of the first four
    assert await indexed(services, "charge") == sales
