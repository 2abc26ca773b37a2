"""The billing index fed from a WooCommerce store (`sync_page`), through our client against the
emulated store: orders with their refunds, guests, accounts and subscriptions; a sync killed
between pages goes on from the next page; a sync with nothing new reads and writes nothing new."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qs

import pytest

from bot.gateways.woocommerce.gateway import WooCommerceGateway
from bot.index.sync import sync_gateway
from bot.services import Services
from bot.store.tables import IndexedObject, SyncCursor
from chargedesk_emulators.woocommerce import PREFIX, WooCommerceEmulator, woocommerce_api
from tests.fakes.woocommerce_env import woocommerce_gateway
from tests.index.syncing import Crash, sync_killed
from tests.index.syncing import indexed as index_of

pytestmark = pytest.mark.storage

NAME = "woocommerce"


@dataclass
class Shop:
    api: WooCommerceEmulator
    gateway: WooCommerceGateway
    ada: int
    orders: list[int]
    guest_order: int
    refund: int
    subscription: int


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    """Two accounts, seven orders (one a guest's, partly refunded), a subscription."""
    with woocommerce_api() as api:
        ada = api.add_customer("ada@example.com", "Ada", "Lovelace")
        bob = api.add_customer("bob@example.com", "Bob", "Builder")
        orders = [api.add_order("10.00", customer_id=ada, days_ago=d) for d in (9, 8, 7)]
        orders.append(api.add_order("20.00", customer_id=bob, days_ago=6))
        guest = api.add_order("40.00", email="gus@example.com", name=("Gus", "Guest"), days_ago=5)
        refund = api.refund_in_dashboard(guest, "15.00")
        subscription = api.add_subscription(ada, "12.00", product="Pro monthly", days_ago=4)
        orders += [guest, api.orders[subscription].parent_id]
        gateway = woocommerce_gateway(api)
        try:
            yield Shop(api, gateway, ada, orders, guest, refund, subscription)
        finally:
            await gateway.close()


async def indexed(services: Services, kind: str) -> dict[str, IndexedObject]:
    return await index_of(services, NAME, kind)


def pages_read(api: WooCommerceEmulator, path: str) -> list[int]:
    return [
        int(parse_qs(e.raw_query)["page"][0]) for e in api.requests_to("GET", f"{PREFIX}/{path}")
    ]


async def test_a_woocommerce_sync_indexes_orders_refunds_guests_accounts_and_subscriptions(
    services: Services, shop: Shop
) -> None:
    result = await sync_gateway(services, shop.gateway, page_size=2, pause=0.01)
    assert result.skipped is None
    charges = await indexed(services, "charge")
    assert set(charges) == {str(o) for o in shop.orders}
    guest = charges[str(shop.guest_order)]
    assert (guest.amount, guest.currency, guest.exponent, guest.amount_settled) == (
        4000,
        "USD",
        2,
        1500,
    )
    assert guest.customer_id == "gus@example.com"
    (refund,) = (await indexed(services, "refund")).values()
    assert (refund.object_id, refund.related_id, refund.amount) == (
        str(shop.refund), str(shop.guest_order), 1500,
    )  # fmt: skip
    customers = await indexed(services, "customer")
    assert set(customers) == {f"customer-{shop.ada}", f"customer-{shop.ada + 1}", "gus@example.com"}
    gus = customers["gus@example.com"]
    assert (gus.email, gus.name_key) == ("gus@example.com", "gus guest")
    assert customers[f"customer-{shop.ada}"].email == "ada@example.com"
    (sub,) = (await indexed(services, "subscription")).values()
    assert (sub.object_id, sub.customer_id, sub.amount) == (
        str(shop.subscription), f"customer-{shop.ada}", 1200,
    )  # fmt: skip
    # Orders were asked in ID order, 2 a page (the sync's page size), GMT dates.
    (first, *_) = [parse_qs(e.raw_query) for e in shop.api.requests_to("GET", f"{PREFIX}/orders")]
    assert (first["orderby"], first["order"], first["per_page"], first["dates_are_gmt"]) == (
        ["id"], ["asc"], ["2"], ["true"],
    )  # fmt: skip


async def test_a_woocommerce_sync_killed_between_pages_goes_on_from_the_next_page(
    services: Services, shop: Shop
) -> None:
    def die_after_two_order_pages(gateway: str, kind: str, written: int) -> None:
        if kind == "charge" and len(pages_read(shop.api, "orders")) == 2:
            raise Crash

    cursor = await sync_killed(services, shop.gateway, when=die_after_two_order_pages)
    assert cursor.synced == 4  # two orders a page
    assert len(cursor.cursor or "") < 500

    result = await sync_gateway(services, shop.gateway, page_size=2, pause=0.01)
    assert pages_read(shop.api, "orders") == [1, 2, 3]  # page 3 next: none read twice
    # The rest of the orders, the guest's refund and the guest: each written once.
    assert result.written["charge"] == (len(shop.orders) - 4) + 1 + 1
    assert set(await indexed(services, "charge")) == {str(o) for o in shop.orders}


async def test_a_second_woocommerce_sync_finds_nothing_new_then_only_what_changed(
    services: Services, shop: Shop
) -> None:
    await sync_gateway(services, shop.gateway, page_size=2, pause=0.01)
    again = await sync_gateway(services, shop.gateway, page_size=2, pause=0.01)
    assert again.total == 0, again.written
    later = shop.api.refund_in_dashboard(shop.orders[0], "4.00")  # modifies the order
    newcomer = shop.api.add_customer("cy@example.com", "Cy", "New")
    third = await sync_gateway(services, shop.gateway, page_size=2, pause=0.01)
    assert third.written["charge"] == 2  # the refunded order and its refund, nothing else
    assert third.written["customer"] == 1
    refunds = await indexed(services, "refund")
    assert refunds[str(later)].related_id == str(shop.orders[0])
    assert (await indexed(services, "charge"))[str(shop.orders[0])].amount_settled == 400
    assert f"customer-{newcomer}" in await indexed(services, "customer")
    modified_after = [
        parse_qs(e.raw_query).get("modified_after")
        for e in shop.api.requests_to("GET", f"{PREFIX}/orders")
    ]
    assert modified_after[-1] is not None  # later syncs ask only for what changed


async def test_a_store_without_subscriptions_syncs_its_orders(
    services: Services, shop: Shop
) -> None:
    shop.api.set_subscriptions(False)
    result = await sync_gateway(services, shop.gateway, page_size=100, pause=0.01)
    assert result.written["subscription"] == 0
    assert set(await indexed(services, "charge")) == {str(o) for o in shop.orders}


async def test_a_busy_stores_cursor_stays_within_what_the_index_keeps(
    services: Services, shop: Shop
) -> None:
    # Sixty orders changed just now: more than the cursor remembers. Those it forgets are read
    # again next time (refreshed, never lost), and the cursor still fits its column.
    busy = [shop.api.add_order("1.00", customer_id=shop.ada) for _ in range(60)]
    await sync_gateway(services, shop.gateway, page_size=100, pause=0.01)
    async with services.db.read() as session:
        cursor = await session.get(SyncCursor, (NAME, "charge"))
    assert cursor is not None and cursor.done and len(cursor.cursor or "") < 500
    again = await sync_gateway(services, shop.gateway, page_size=100, pause=0.01)
    assert 0 < again.written["charge"] < len(busy)
    assert {str(o) for o in busy} <= set(await indexed(services, "charge"))
