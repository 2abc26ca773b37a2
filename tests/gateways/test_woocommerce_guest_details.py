"""`name` and `address` for a WooCommerce guest (an order's billing details, no account):
refused in one line before anyone is asked to approve it, with nothing sent to the store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.registry import Gateways
from bot.gateways.woocommerce.gateway import WooCommerceGateway
from bot.services import Services
from bot.store.tables import ApprovalRow
from chargedesk_emulators.woocommerce import PREFIX, WooCommerceEmulator, woocommerce_api
from tests.conftest import say
from tests.fakes.woocommerce_env import woocommerce_gateway

pytestmark = pytest.mark.approvals

GUEST = "gus@example.com"


@pytest.fixture
async def store(services: Services) -> AsyncIterator[WooCommerceEmulator]:
    """The emulated store beside the bot's gateways, with a guest's order and an account."""
    with woocommerce_api() as api:
        api.add_order("19.00", email=GUEST, name=("Gus", "Guest"))
        gateway = woocommerce_gateway(api)
        services.gateways = Gateways([*services.gateways, gateway], timeout=10)
        try:
            yield api
        finally:
            await gateway.close()


async def approvals(services: Services) -> int:
    async with services.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(ApprovalRow)) or 0)


def writes(api: WooCommerceEmulator) -> list[object]:
    return [*api.requests_to("PUT", PREFIX), *api.requests_to("POST", PREFIX)]


@pytest.mark.parametrize(
    "line",
    [
        f"name woocommerce:{GUEST} Gus Gander reason: customer asked",
        f"address woocommerce:{GUEST} Friedrichstraße 68, 10117 Berlin, DE reason: moved",
    ],
)
async def test_a_guests_name_or_address_is_refused_before_approval_saying_where_to_change_it(
    services: Services, store: WooCommerceEmulator, agent, line: str
) -> None:  # type: ignore[no-untyped-def]
    reply = await say(services, agent, line)
    assert reply.error is not None and reply.error.code == "invalid_state"
    assert "\n" not in reply.error.message
    assert reply.error.message.startswith(f"{GUEST} bought as a guest")
    assert "change them on the order in WooCommerce" in reply.error.message
    assert await approvals(services) == 0
    assert writes(store) == []


async def test_an_accounts_name_still_goes_to_approval_and_reaches_the_store(
    services: Services, store: WooCommerceEmulator, agent
) -> None:  # type: ignore[no-untyped-def]
    user = store.add_customer("ada@example.com", "Ada", "Lovelace")
    reply = await say(services, agent, f"name woocommerce:customer-{user} Ada King reason: married")
    assert reply.error is None, reply.error
    assert await approvals(services) == 1
    if reply.approval is not None and reply.approval.state == "succeeded":
        assert len(store.requests_to("PUT", f"{PREFIX}/customers/{user}")) == 1
        assert (store.customers[user].first_name, store.customers[user].last_name) == (
            "Ada",
            "King",
        )


async def test_the_gateway_refuses_a_guest_at_execution_too(store: WooCommerceEmulator) -> None:
    gateway: WooCommerceGateway = woocommerce_gateway(store)
    try:
        with pytest.raises(GatewayError, match="bought as a guest") as refused:
            await gateway.update_customer(GUEST, name="Gus Gander", idempotency_key="k1")
        assert refused.value.code == ErrorCode.invalid_state
        assert writes(store) == []
    finally:
        await gateway.close()
