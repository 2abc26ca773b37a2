"""Recurly mirrored into the billing index: the site's lists read oldest first from
`begin_time`, page by page, through the official client against the emulator, with a cursor
(the last second written and the IDs written in it) that resumes and never writes twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.gateways.recurly.gateway import RecurlyGateway
from bot.gateways.registry import Gateways
from bot.index.sync import sync_gateway
from bot.services import Services
from bot.store.tables import IndexedObject
from chargedesk_emulators.recurly import RecurlyEmulator, recurly_api, schema_problems
from tests.fakes.recurly_env import CURRENCY, recurly_gateway, seed_contract_account
from tests.index.syncing import indexed as index_of
from tests.index.syncing import sync_killed

pytestmark = pytest.mark.storage

_CHARGES = ("purchase", "capture", "authorization")


@pytest.fixture
async def recurly(services: Services) -> AsyncIterator[tuple[RecurlyEmulator, RecurlyGateway]]:
    """The contract's account (purchases, holds, two subscriptions, a refund) and one whose
    three purchases were made in the same second, so pages split ties."""
    with recurly_api() as api:
        seeded = seed_contract_account(api)
        api.refund_in_dashboard(seeded.invoice_id, "10.00", refund_method="all_transaction")
        other = api.add_account("ana@example.com", "Ana", "Lima", code="ana")
        same = datetime.now(UTC).replace(microsecond=0) - timedelta(days=5)
        for amount in ("11.00", "12.00", "13.00"):
            invoice, payment = api.add_purchase(other, amount, CURRENCY)
            assert payment is not None
            api.invoices[invoice].created = api.transactions[payment].created = same
        gateway = recurly_gateway(api)
        services.gateways = Gateways([*services.gateways, gateway], timeout=5)
        try:
            yield api, gateway
        finally:
            await gateway.close()


async def indexed(services: Services, kind: str) -> list[str]:
    return sorted(await index_of(services, "recurly", kind))


def expected(api: RecurlyEmulator) -> dict[str, list[str]]:
    """What the Recurly site holds, by our kinds."""
    txns = api.transactions.values()
    return {
        "customer": sorted(api.accounts),
        "charge": sorted(t.id for t in txns if t.type in _CHARGES),
        "refund": sorted(t.id for t in txns if t.type == "refund"),
        "invoice": sorted(i.id for i in api.invoices.values() if i.type == "charge"),
        "subscription": sorted(api.subscriptions),
        "dispute": [],
    }


async def test_recurly_sync_fills_the_index_then_finds_nothing_new(
    services: Services, recurly: tuple[RecurlyEmulator, RecurlyGateway]
) -> None:
    api, gateway = recurly
    first = await sync_gateway(services, gateway, page_size=2, pause=0.01)
    for kind, ids in expected(api).items():
        assert await indexed(services, kind) == ids, kind
        assert first.written[kind] == len(ids), kind
    listed = api.requests_to("GET", "/transactions")
    assert listed and all(
        e.query["sort"] == "created_at" and e.query["order"] == "asc"
        for e in listed
        if "ids" not in e.query
    )
    again = await sync_gateway(services, gateway, page_size=2, pause=0.01)
    assert again.total == 0
    ana = next(a.id for a in api.accounts.values() if a.code == "ana")
    invoice, payment = api.add_purchase(ana, "14.00", CURRENCY)
    third = await sync_gateway(services, gateway, page_size=2, pause=0.01)
    assert third.written == {**{k: 0 for k in third.written}, "charge": 1, "invoice": 1}
    assert payment in await indexed(services, "charge")
    assert invoice in await indexed(services, "invoice")
    assert schema_problems(api.exchanges, requests=True) == []


async def test_an_interrupted_recurly_sync_resumes_without_writing_twice(
    services: Services, recurly: tuple[RecurlyEmulator, RecurlyGateway]
) -> None:
    api, gateway = recurly
    charges = expected(api)["charge"]
    assert len(charges) >= 6

    cursor = await sync_killed(services, gateway, charges=4)
    assert cursor.synced >= 4
    written_before = cursor.synced
    resumed = await sync_gateway(services, gateway, page_size=2, pause=0.01)
    assert resumed.written["charge"] == len(charges) - written_before  # none written twice
    assert await indexed(services, "charge") == charges


async def test_a_synced_payment_shows_what_was_refunded_of_it(
    services: Services, recurly: tuple[RecurlyEmulator, RecurlyGateway]
) -> None:
    api, gateway = recurly
    await sync_gateway(services, gateway, page_size=50, pause=0.01)
    refunded = next(t for t in api.transactions.values() if t.type == "refund")
    async with services.db.read() as session:
        row = await session.scalar(
            select(IndexedObject).where(
                IndexedObject.gateway == "recurly",
                IndexedObject.object_id == refunded.original_transaction_id,
            )
        )
    assert row is not None and row.status == "partially_refunded"
