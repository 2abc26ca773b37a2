"""The Braintree backend of the gateway contract suite: the real SDK against the emulator.

The customer's two subscriptions come with their payments (one per billed
cycle, as Braintree keeps them), listed beside the contract's charges.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from bot.gateways.base import Capability
from bot.gateways.braintree.gateway import BraintreeGateway
from bot.settings import BraintreeSettings
from chargedesk_emulators.braintree import BraintreeEmulator, braintree_api
from tests.fakes.emulated_gateway import contract_env
from tests.gateways.contract import ContractEnv

EMAIL = "jane.doe@example.com"
CURRENCY = "USD"


def braintree_settings(api: BraintreeEmulator, **overrides: object) -> BraintreeSettings:
    """Settings pointing the gateway at the emulator, fast enough for tests."""
    values: dict[str, object] = {
        "merchant_id": api.merchant_id,
        "public_key": api.public_key,
        "private_key": SecretStr(api.private_key),
        "base_url": api.base_url,
        "timeout": 5.0,
        "max_retries": 2,
    }
    values.update(overrides)
    return BraintreeSettings.model_validate(values)


def braintree_gateway(api: BraintreeEmulator, **overrides: object) -> BraintreeGateway:
    """Our gateway on the emulator, retrying without delay; `overrides` change its settings."""
    return BraintreeGateway(braintree_settings(api, **overrides), backoff=0.01)


@asynccontextmanager
async def braintree_beside(services: Any) -> AsyncIterator[tuple[BraintreeEmulator, Seeded]]:
    """The emulator seeded with the contract's customer, its gateway one more of `services`."""
    from bot.gateways.registry import Gateways

    with braintree_api() as api:
        seeded = seed_contract_customer(api)
        gateway = braintree_gateway(api)
        services.gateways = Gateways([*services.gateways, gateway], timeout=5)
        try:
            yield api, seeded
        finally:
            await gateway.close()


@dataclass
class Seeded:
    customer_id: str
    charge_id: str
    authorized_ids: tuple[str, str]
    subscription_ids: tuple[str, str]


def seed_contract_customer(api: BraintreeEmulator) -> Seeded:
    """The contract's customer: a settled 100.00 sale, two 50.00 authorizations, two subscriptions."""
    customer = api.add_customer(EMAIL, "Jane", "Doe")
    api.add_plan("pro-monthly", "Pro monthly", "20.00", CURRENCY)
    api.add_plan("extra-seats", "Extra seats", "5.00", CURRENCY)
    return Seeded(
        customer_id=customer,
        charge_id=api.add_sale(customer, "100.00", CURRENCY, status="settled", days_ago=3),
        authorized_ids=(
            api.add_sale(customer, "50.00", CURRENCY, status="authorized", days_ago=2),
            api.add_sale(customer, "50.00", CURRENCY, status="authorized", days_ago=1),
        ),
        subscription_ids=(
            api.add_subscription(customer, "pro-monthly", cycle=2, days_ago=45),
            api.add_subscription(customer, "extra-seats", cycle=1, days_ago=10),
        ),
    )


def braintree_env() -> AbstractAsyncContextManager[ContractEnv]:
    """The gateway contract suite's Braintree backend."""
    return contract_env(
        braintree_api, seed_contract_customer, braintree_gateway, email=EMAIL, currency=CURRENCY,
        unsupported=Capability.send_invoice,
    )  # fmt: skip
