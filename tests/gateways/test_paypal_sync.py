"""The billing index mirrors what PayPal can list: payers, charges and refunds from
Transaction Search (31-day windows, 3 hours behind), invoices and disputes; resumable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.gateways.paypal import sync
from bot.gateways.paypal.gateway import PayPalGateway
from bot.index.sync import sync_gateway
from bot.services import Services
from bot.store.tables import IndexedObject
from chargedesk_emulators.paypal import PayPalEmulator, schema_problems
from tests.fakes.paypal_env import EMAIL, Seeded, paypal_beside
from tests.index.syncing import indexed as index_of
from tests.index.syncing import sync_killed

pytestmark = pytest.mark.storage


class World:
    def __init__(self, api: PayPalEmulator, seeded: Seeded, gateway: PayPalGateway) -> None:
        self.api, self.seeded, self.gateway = api, seeded, gateway
        self.old = api.add_capture(seeded.payer_id, "12.00", days_ago=400)  # 13 windows back
        self.refund = api.refund_outside(seeded.charge_id, "10.00", days_ago=1)
        self.invoice = api.add_invoice(EMAIL, "80.00", days_ago=5, number="INV-0042")
        self.dispute = api.add_dispute(seeded.charge_id, value="30.00", days_ago=2)

    def searches(self) -> list[tuple[datetime, datetime]]:
        return [
            (datetime.fromisoformat(e.query["start_date"]), datetime.fromisoformat(e.query["end_date"]))
            for e in self.api.requests_to("GET", "/v1/reporting/transactions")
        ]  # fmt: skip


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    async with paypal_beside(services) as beside:
        yield World(*beside)


async def indexed(services: Services, kind: str) -> dict[str, IndexedObject]:
    return await index_of(services, "paypal", kind)


async def test_a_paypal_sync_fills_the_index_then_finds_nothing_new(services, world):
    first = await sync_gateway(services, world.gateway, page_size=2, pause=0.01)
    payments = {world.seeded.charge_id, world.old, *world.seeded.authorized_ids}
    charges = await indexed(services, "charge")
    assert payments <= set(charges) and len(charges) == 6  # and the 2 subscription payments
    assert {charges[a].status for a in world.seeded.authorized_ids} == {"authorized"}
    assert (charges[world.old].amount, charges[world.old].currency) == (1200, "USD")
    (payer,) = (await indexed(services, "customer")).values()
    assert (payer.object_id, payer.email) == (world.seeded.payer_id, EMAIL)
    (refund,) = (await indexed(services, "refund")).values()
    assert (refund.object_id, refund.related_id, refund.amount) == (
        world.refund, world.seeded.charge_id, 1000,
    )  # fmt: skip
    (invoice,) = (await indexed(services, "invoice")).values()
    assert (invoice.object_id, invoice.number, invoice.customer_id) == (
        world.invoice, "INV-0042", EMAIL,
    )  # fmt: skip
    (dispute,) = (await indexed(services, "dispute")).values()
    assert (dispute.object_id, dispute.related_id) == (world.dispute, world.seeded.charge_id)
    assert first.written["subscription"] == 0
    # 31-day windows at most, from three years back (the default), never overlapping.
    windows = sorted(set(world.searches()))
    assert all(end - start <= timedelta(days=31) for start, end in windows)
    assert windows[0][0] <= datetime.now(UTC) - timedelta(days=3 * 365 - 2)
    starts, ends = sorted({s for s, _ in windows}), {e for _, e in windows}
    assert all(start - timedelta(seconds=1) in ends for start in starts[1:])  # no overlap
    assert schema_problems(world.api.exchanges, requests=True) == []

    asked = len(world.searches())
    again = await sync_gateway(services, world.gateway, page_size=2, pause=0.01)
    assert again.total == 0
    # Only the seconds since the first sync's last window are asked again.
    assert all(end - start < timedelta(minutes=1) for start, end in world.searches()[asked:])


async def test_an_interrupted_paypal_sync_resumes_after_its_last_page(services, world):
    cursor = await sync_killed(services, world.gateway, charges=2)
    assert cursor.synced >= 2
    before = cursor.synced
    resumed = await sync_gateway(services, world.gateway, page_size=2, pause=0.01)
    assert len(await indexed(services, "charge")) == 6
    assert resumed.written["charge"] == 6 - before  # nothing read twice
    assert (await sync_gateway(services, world.gateway, page_size=2)).total == 0


async def test_a_payment_newer_than_the_search_lag_is_mirrored_by_a_later_sync(world):
    api = world.gateway._api  # the gateway's own client, its clock given
    now = datetime.now(UTC)
    fresh = world.api.add_capture(world.seeded.payer_id, "7.00")  # PayPal shows it in 3 h
    cursor: str | None = None
    seen: set[str] = set()
    more = True
    while more:
        page = await sync.page(api, "charge", cursor, since=None, limit=50, now=now)
        seen |= {c.id for c in page.objects}
        cursor, more = page.cursor, page.more
    assert fresh not in seen and world.old in seen
    later = await sync.page(
        api, "charge", cursor, since=None, limit=50, now=now + timedelta(hours=4)
    )
    assert [c.id for c in later.objects] == [fresh] and not later.more
