"""`update_customer` and `remove_tax_id` on every gateway: through each SDK to its emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.gateways.base import Capability, GatewayError, LookupQuery, Unsupported, split_name
from bot.models import Address, GatewayProfile
from tests.gateways.contract import ContractEnv
from tests.gateways.test_contract import BACKENDS

EDITABLE = ("ledger", "stripe-emulator", "braintree-emulator", "recurly-emulator",
            "woocommerce-emulator")  # fmt: skip
BERLIN = Address(line1="Friedrichstraße 68", postal_code="10117", city="Berlin", country="DE")


@pytest.fixture(params=EDITABLE)
async def env(request, services) -> AsyncIterator[ContractEnv]:  # type: ignore[no-untyped-def]
    async with BACKENDS[request.param](services.db) as contract_env:
        try:
            yield contract_env
        finally:
            await contract_env.gateway.close()


async def profile_of(env: ContractEnv) -> GatewayProfile:
    found = await env.gateway.lookup(LookupQuery("id", env.customer_id))
    return next(p for p in found if p.customer.id == env.customer_id)


async def test_name_and_address_are_changed_once_and_read_back(env: ContractEnv) -> None:
    gateway = env.gateway
    assert Capability.customer_details in gateway.capabilities
    for _ in range(2):  # a retry with the same key changes nothing more
        changed = await gateway.update_customer(
            env.customer_id, name="Acme Trading GmbH", address=BERLIN, idempotency_key="apr_d1"
        )
        assert (changed.name, changed.address) == ("Acme Trading GmbH", BERLIN)
    moved = Address(line1="1 Rue de Rivoli", postal_code="75001", city="Paris", country="FR")
    renamed = await gateway.update_customer(
        env.customer_id, address=moved, idempotency_key="apr_d2"
    )
    assert (renamed.name, renamed.address) == ("Acme Trading GmbH", moved)  # the name stays
    customer = (await profile_of(env)).customer
    assert (customer.name, customer.address) == ("Acme Trading GmbH", moved)


async def test_paypal_refuses_details_with_its_reason(services) -> None:  # type: ignore[no-untyped-def]
    async with BACKENDS["paypal-emulator"](services.db) as paypal:
        try:
            for call in (
                paypal.gateway.update_customer(paypal.customer_id, name="X", idempotency_key="k"),
                paypal.gateway.remove_tax_id(
                    paypal.customer_id, "DE136695976", idempotency_key="k"
                ),
            ):
                with pytest.raises(Unsupported, match="PayPal payer details belong to the payer"):
                    await call
        finally:
            await paypal.gateway.close()


@pytest.mark.parametrize("backend", ["ledger", "stripe-emulator"])
async def test_a_tax_id_is_removed_once(services, backend: str) -> None:  # type: ignore[no-untyped-def]
    async with BACKENDS[backend](services.db) as env:
        try:
            await env.gateway.add_tax_id(env.customer_id, "DE136695976", idempotency_key="t1")
            assert [t.value for t in (await profile_of(env)).tax_ids] == ["DE136695976"]
            for _ in range(2):
                removed = await env.gateway.remove_tax_id(
                    env.customer_id, "de 136 695 976", idempotency_key="t2"
                )
                assert removed == "DE136695976"
            assert (await profile_of(env)).tax_ids == ()
        finally:
            await env.gateway.close()


def test_a_name_is_split_into_first_and_last_where_a_gateway_keeps_them_apart() -> None:
    assert split_name("Jane Q. Doe") == ("Jane Q.", "Doe")
    assert split_name(" Acme ") == ("Acme", "")


async def test_woocommerce_refuses_a_guests_details_with_its_reason(services) -> None:  # type: ignore[no-untyped-def]
    async with BACKENDS["woocommerce-emulator"](services.db) as woo:
        try:
            with pytest.raises(GatewayError, match="bought as a guest, so their name and address"):
                await woo.gateway.update_customer(
                    "guest@example.com", name="Guest", idempotency_key="k"
                )
        finally:
            await woo.gateway.close()
